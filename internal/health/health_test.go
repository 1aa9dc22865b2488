package health

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/store"
)

// countingStore counts the reads of a real store.
type countingStore struct {
	store.Backend
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, id string) (*store.Token, error) {
	c.gets.Add(1)
	return c.Backend.Get(ctx, id)
}

func openBolt(t *testing.T) *bolt.Store {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// /readyz takes no credential: a flood of probes costs the store one read
// a second, whoever sends them and however many at once.
func TestReadinessProbesShareOneStoreRead(t *testing.T) {
	counted := &countingStore{Backend: openBolt(t)}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var p StoreProbe

	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if !p.Up(context.Background(), counted, now) {
				t.Error("a bolt store that answers is reported down")
			}
		})
	}
	wg.Wait()
	if n := counted.gets.Load(); n != 1 {
		t.Fatalf("200 probes within a second read the store %d times, want 1", n)
	}
	p.Up(context.Background(), counted, now.Add(StoreProbeReuse))
	if n := counted.gets.Load(); n != 2 {
		t.Fatalf("a probe a second later read the store %d times in all, want 2", n)
	}
}

// A closed store is down, and /readyz names it with every other part that
// is not ready, in a fixed order; /healthz stays live.
func TestReadinessNamesWhatIsNotReady(t *testing.T) {
	b := openBolt(t)
	var p StoreProbe
	checks := Checks{
		StoreUp:        func(ctx context.Context) bool { return p.Up(ctx, b, time.Now()) },
		PolicyLoaded:   func() bool { return true },
		AuditWritable:  func() bool { return true },
		ChangeFeedLive: func() bool { return false },
	}
	get := func(path string) (int, Body, http.Header) {
		t.Helper()
		w := httptest.NewRecorder()
		if !Serve(w, httptest.NewRequest(http.MethodGet, path, nil), checks.NotReady) {
			t.Fatalf("GET %s was not answered as a probe", path)
		}
		var body Body
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("GET %s: %q: %v", path, w.Body, err)
		}
		return w.Code, body, w.Header()
	}
	if status, body, _ := get(ReadinessPath); status != http.StatusServiceUnavailable || !slices.Equal(body.NotReady, []string{PartChangeFeed}) {
		t.Errorf("readyz with the feed down: %d %+v", status, body)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(StoreProbeReuse) // the answer before the close is reused for that long
	status, body, header := get(ReadinessPath)
	if status != http.StatusServiceUnavailable || !slices.Equal(body.NotReady, []string{PartStore, PartChangeFeed}) {
		t.Errorf("readyz with the store closed: %d %+v", status, body)
	}
	if header.Get("Cache-Control") != "no-store" || header.Get("Content-Type") != "application/json" {
		t.Errorf("readyz headers %v", header)
	}
	if status, body, _ := get(LivenessPath); status != http.StatusOK || body.Status != "live" {
		t.Errorf("healthz: %d %+v", status, body)
	}
	w := httptest.NewRecorder()
	if Serve(w, httptest.NewRequest(http.MethodPost, ReadinessPath, nil), checks.NotReady) {
		t.Error("POST /readyz was answered as a probe; it must go the way of any management call")
	}
}
