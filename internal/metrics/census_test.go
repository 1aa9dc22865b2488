package metrics

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/store/storetest"
)

// The service label is bounded: past maxServiceLabels, every new service
// counts as "other", and the series stop growing.
func TestServiceLabelIsBounded(t *testing.T) {
	m := newCensusMetrics()
	for i := range maxServiceLabels + 50 {
		m.forService(fmt.Sprintf("svc%d", i)).count(gateway.Allow)
	}
	m.forService("svc0").count(gateway.Deny)
	series := make(chan prometheus.Metric, 1000)
	m.services.Collect(series)
	if got, want := len(series), (maxServiceLabels+1)*3; got != want {
		t.Errorf("%d series, want %d (3 results for %d services and other)", got, want, maxServiceLabels)
	}
	if got := counterValue(t, m.services.WithLabelValues(serviceOther, gateway.Allow)); got != 50 {
		t.Errorf("other counted %v calls, want 50", got)
	}
	if got := counterValue(t, m.services.WithLabelValues("svc0", gateway.Deny)); got != 1 {
		t.Errorf("svc0 deny = %v", got)
	}
	// Every state has a series from the start, so alerts see zeros.
	gauges := make(chan prometheus.Metric, 100)
	m.tokens.Collect(gauges)
	if len(gauges) != len(store.States) {
		t.Errorf("%d token state series, want %d", len(gauges), len(store.States))
	}
}

// clock is a time the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// The census counts a real store at once and then every interval, judges
// expiry by the clock it is given, and stops with its context.
func TestCensusCountsTheStore(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Microsecond)
	expiringSoon := storetest.NewToken("alice")
	expiringSoon.ExpiresAt = start.Add(24 * time.Hour)
	lasting := storetest.NewToken("bob")
	lasting.ExpiresAt = start.Add(30 * 24 * time.Hour)
	for _, tok := range []*store.Token{expiringSoon, lasting} {
		tok.NotBefore = start.Add(-time.Minute)
		if err := b.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}

	m := New(nil)
	reg := prometheus.NewPedanticRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: start}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.RunCensus(runCtx, Census{Store: b, Now: c.Now, Interval: 10 * time.Millisecond, Logger: zap.NewNop()})
	}()

	waitForGauges(t, reg, map[string]float64{
		`tokengate_tokens{state="active"}`: 2, `tokengate_tokens{state="expired"}`: 0, `tokengate_tokens_expiring_soon`: 1,
	})
	// Two days on by the census's clock: one token expired, the other
	// still weeks from its end.
	c.set(start.Add(48 * time.Hour))
	waitForGauges(t, reg, map[string]float64{
		`tokengate_tokens{state="active"}`: 1, `tokengate_tokens{state="expired"}`: 1, `tokengate_tokens_expiring_soon`: 0,
	})
	if last := gaugeSamples(t, reg)["tokengate_census_last_success_timestamp_seconds"]; time.Since(time.Unix(int64(last), 0)) > time.Minute {
		t.Errorf("census last success at %v, want the wall clock's now", last)
	}

	stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the census did not stop with its context")
	}
}

// A count that fails leaves the gauges as they were and is counted.
func TestCensusOfAClosedStoreKeepsTheGauges(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Create(context.Background(), storetest.NewToken("alice")); err != nil {
		t.Fatal(err)
	}
	m := New(nil)
	reg := prometheus.NewPedanticRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	census := Census{Store: b, Now: time.Now, Logger: zap.NewNop()}
	m.census.count(context.Background(), census)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	m.census.count(context.Background(), census)
	got := gaugeSamples(t, reg)
	if got[`tokengate_tokens{state="active"}`] != 1 || got["tokengate_census_errors_total"] != 1 {
		t.Errorf("after a failed count: active %v, errors %v; want 1 and 1",
			got[`tokengate_tokens{state="active"}`], got["tokengate_census_errors_total"])
	}
}

func waitForGauges(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gaugeSamples(t, reg)
		missing := ""
		for series, v := range want {
			if got[series] != v {
				missing += fmt.Sprintf(" %s=%v (want %v)", series, got[series], v)
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gauges not counted within 10s:%s", missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gaugeSamples gathers reg's gauges and counters without labels, or with
// one, as series -> value.
func gaugeSamples(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			series := f.GetName()
			if l := s.GetLabel(); len(l) == 1 {
				series += fmt.Sprintf(`{%s=%q}`, l[0].GetName(), l[0].GetValue())
			}
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				samples[series] = s.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				samples[series] = s.GetCounter().GetValue()
			}
		}
	}
	return samples
}
