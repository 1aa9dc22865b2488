package caddymodule

import (
	"context"
	"path/filepath"
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

// /readyz takes no credential: a flood of probes costs the store one read
// a second, whoever sends them and however many at once.
func TestReadinessProbesShareOneStoreRead(t *testing.T) {
	t.Parallel()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	counted := &countingStore{Backend: b}
	var clock testClock
	a := &App{store: counted, now: clock.Now, storeProbe: new(storeProbe)}

	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !a.storeUp(context.Background()) {
				t.Error("a bolt store that answers is reported down")
			}
		}()
	}
	wg.Wait()
	if n := counted.gets.Load(); n != 1 {
		t.Fatalf("200 probes within a second read the store %d times, want 1", n)
	}
	clock.Advance(storeProbeReuse)
	a.storeUp(context.Background())
	if n := counted.gets.Load(); n != 2 {
		t.Fatalf("a probe a second later read the store %d times in all, want 2", n)
	}
}
