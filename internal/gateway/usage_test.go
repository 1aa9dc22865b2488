package gateway

import (
	"context"
	"path/filepath"
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
