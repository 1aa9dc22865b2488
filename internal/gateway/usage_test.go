package gateway

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/store/storetest"
)

func openBolt(t *testing.T) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Calls from many goroutines, out of order: the store ends up with the
// newest time and address and every scope exercised, written when the
// recorder stops.
func TestUsageRecorderKeepsNewestAndFlushesOnStop(t *testing.T) {
	s := openBolt(t)
	ctx := context.Background()
	tok := storetest.NewToken("alice")
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	u := newUsageRecorder(s, func(err error) { t.Errorf("store error: %v", err) })
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.run(runCtx); close(done) }()

	base := time.Now().UTC().Truncate(time.Microsecond)
	newest := base.Add(time.Hour)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, ip := base.Add(time.Duration(i)*time.Second), "10.0.0.1"
			if i == 17 {
				at, ip = newest, "10.0.0.17"
			}
			scope := "billing:read"
			if i%10 == 0 {
				scope = "billing:write"
			}
			u.record(store.Usage{TokenID: tok.ID, At: at, IP: ip, Scope: scope})
		}()
	}
	wg.Wait()
	stop()
	<-done

	got, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastUsedAt.Equal(newest) || got.LastUsedIP != "10.0.0.17" {
		t.Fatalf("last used %s from %s, want %s from 10.0.0.17", got.LastUsedAt, got.LastUsedIP, newest)
	}
	if len(got.UsedScopes) != 2 || got.UsedScopes[0] != "billing:read" || got.UsedScopes[1] != "billing:write" {
		t.Fatalf("used scopes %v", got.UsedScopes)
	}
}

// Between flushes memory is bounded: distinct (token, scope) pairs beyond
// usagePendingMax are dropped, repeats of a known pair still update it,
// and reaching usageBatchMax asks for an early flush.
func TestUsageRecorderIsBounded(t *testing.T) {
	u := newUsageRecorder(openBolt(t), nil)
	at := time.Now()
	for i := range usagePendingMax + 100 {
		u.record(store.Usage{TokenID: "tok_" + string(rune('a'+i%26)) + time.Duration(i).String(), At: at})
		if i+1 == usageBatchMax && len(u.full) != 1 {
			t.Fatalf("no early flush requested at %d pending", usageBatchMax)
		}
	}
	if n := len(u.pending); n != usagePendingMax {
		t.Fatalf("%d pending, want the bound %d", n, usagePendingMax)
	}
	first := "tok_a0s"
	u.record(store.Usage{TokenID: first, At: at.Add(time.Minute)})
	if x := u.pending[usageKey{first, ""}]; !x.At.Equal(at.Add(time.Minute)) {
		t.Fatalf("known pair not updated at the bound: %+v", x)
	}
	u.flush(context.Background())
	if n := len(u.pending); n != 0 {
		t.Fatalf("%d pending after a flush", n)
	}
	u.record(store.Usage{TokenID: "tok_new", At: at})
	if n := len(u.pending); n != 1 {
		t.Fatalf("%d pending after one call following a flush", n)
	}
}

// batchCountingStore is a real store that remembers how many observations each
// RecordUsage call handed it.
type batchCountingStore struct {
	store.Store
	batches []int
}

func (c *batchCountingStore) RecordUsage(ctx context.Context, batch []store.Usage) error {
	c.batches = append(c.batches, len(batch))
	return c.Store.RecordUsage(ctx, batch)
}

// A busy token costs one record write per usageResolution: repeats from
// the same address inside it are not written again, while a new address
// or a new scope is written at the next flush, and the stored time is
// never more than usageResolution behind. (Before, every flush wrote every
// pair seen since the last one.)
func TestUsageRecorderWritesABusyPairOncePerResolution(t *testing.T) {
	bs := openBolt(t)
	ctx := context.Background()
	tok := storetest.NewToken("alice")
	if err := bs.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	s := &batchCountingStore{Store: bs}
	u := newUsageRecorder(s, func(err error) { t.Errorf("store error: %v", err) })
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	step := func(at time.Duration, ip, scope string) {
		t.Helper()
		u.record(store.Usage{TokenID: tok.ID, At: t0.Add(at), IP: ip, Scope: scope})
		u.flush(ctx)
	}
	stored := func(wantAt time.Duration, wantIP string, wantScopes ...string) {
		t.Helper()
		got, err := bs.Get(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastUsedAt.Equal(t0.Add(wantAt)) || got.LastUsedIP != wantIP || !slices.Equal(got.UsedScopes, wantScopes) {
			t.Fatalf("stored last used %s from %s, scopes %q; want t0+%s from %s, %q",
				got.LastUsedAt.Sub(t0), got.LastUsedIP, got.UsedScopes, wantAt, wantIP, wantScopes)
		}
	}

	step(0, "10.0.0.1", "svc:read")
	stored(0, "10.0.0.1", "svc:read")
	for i := 1; i <= 30; i++ { // a call every two seconds for a minute, less a second
		step(time.Duration(i)*2*time.Second-time.Second, "10.0.0.1", "svc:read")
	}
	if !slices.Equal(s.batches, []int{1}) {
		t.Fatalf("repeats inside the resolution were written: batches %v, want [1]", s.batches)
	}
	stored(0, "10.0.0.1", "svc:read")

	step(70*time.Second, "10.0.0.1", "svc:read") // past the resolution
	stored(70*time.Second, "10.0.0.1", "svc:read")
	step(71*time.Second, "192.0.2.9", "svc:read") // a new address: at once
	stored(71*time.Second, "192.0.2.9", "svc:read")
	step(72*time.Second, "192.0.2.9", "svc:write") // a new scope: at once
	stored(72*time.Second, "192.0.2.9", "svc:read", "svc:write")
	if !slices.Equal(s.batches, []int{1, 1, 1, 1}) {
		t.Fatalf("batches %v, want [1 1 1 1]", s.batches)
	}
}

// A batch the store refused marks nothing: the next call of the pair is
// recorded again rather than skipped as if it had been stored.
func TestUsageRecorderRetriesAfterAFailedWrite(t *testing.T) {
	bs := openBolt(t)
	tok := storetest.NewToken("alice")
	if err := bs.Create(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	var failures int
	u := newUsageRecorder(bs, func(error) { failures++ })
	at := time.Now()
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}
	u.record(store.Usage{TokenID: tok.ID, At: at, IP: "10.0.0.1"})
	u.flush(context.Background())
	if failures != 1 {
		t.Fatalf("%d failures reported writing to a closed store, want 1", failures)
	}
	u.record(store.Usage{TokenID: tok.ID, At: at.Add(time.Second), IP: "10.0.0.1"})
	if n := len(u.pending); n != 1 {
		t.Fatalf("%d pending after a failed write, want the call recorded again", n)
	}
}
