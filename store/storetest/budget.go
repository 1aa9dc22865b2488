package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// testTakeBudget: a window's budget is taken up to its limit and no
// further, given back down to zero and no further, and each key and each
// window counts apart.
func testTakeBudget(t *testing.T, s store.Backend) {
	ctx := context.Background()
	window := time.Now().UTC().Truncate(time.Minute)
	key := token.NewID() + "/10/1m"
	take := func(key string, window time.Time, want, limit, wantTaken, wantTotal int64) {
		t.Helper()
		taken, total, err := s.TakeBudget(ctx, store.BudgetTake{Key: key, Window: window, Want: want, Limit: limit, KeepUntil: window.Add(time.Minute)})
		if err != nil || taken != wantTaken || total != wantTotal {
			t.Fatalf("take %d of %d: took %d, total %d, %v; want %d, %d", want, limit, taken, total, err, wantTaken, wantTotal)
		}
	}
	take(key, window, 4, 10, 4, 4)
	take(key, window, 5, 10, 5, 9)
	take(key, window, 5, 10, 1, 10)
	take(key, window, 1, 10, 0, 10)
	// A limit lowered by a policy reload takes nothing past it.
	take(key, window, 1, 5, 0, 10)
	take(key, window, -3, 10, -3, 7)
	take(key, window, -100, 10, -7, 0)
	take(key, window, 2, 10, 2, 2)
	take(token.NewID()+"/10/1m", window, 10, 10, 10, 10)
	take(key, window, 0, 10, 0, 2)
	// A new window starts from zero; the ended one may be dropped.
	take(key, window.Add(time.Minute), 3, 10, 3, 3)
}

// testTakeBudgetIsAtomic: many concurrent takes of one window never take
// more than its limit together, and take all of it.
func testTakeBudgetIsAtomic(t *testing.T, s store.Backend) {
	ctx := context.Background()
	window := time.Now().UTC().Truncate(time.Minute)
	key := token.NewID() + "/25/1m"
	var (
		mu  sync.Mutex
		sum int64
		wg  sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				taken, _, err := s.TakeBudget(ctx, store.BudgetTake{Key: key, Window: window, Want: 3, Limit: 25, KeepUntil: window.Add(time.Minute)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sum += taken
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if sum != 25 {
		t.Fatalf("8 nodes taking 3 at a time 5 times took %d of a budget of 25, want 25", sum)
	}
}

// testRateLimitRoundTrips: a token's and a request's own rate limit are
// stored and read back, and survive an update.
func testRateLimitRoundTrips(t *testing.T, s store.Backend) {
	ctx := context.Background()
	limit := store.RateLimit{Requests: 100, Window: time.Minute}
	tok := NewToken("alice")
	tok.RateLimit, tok.RateKey = limit, "tok_first_of_chain"
	mustCreate(t, s, tok)
	unlimited := NewToken("bob")
	mustCreate(t, s, unlimited)
	for _, get := range []func() (*store.Token, error){
		func() (*store.Token, error) { return s.Get(ctx, tok.ID) },
		func() (*store.Token, error) { return s.GetByHash(ctx, tok.Hash) },
		func() (*store.Token, error) {
			return s.Update(ctx, tok.ID, func(t *store.Token) error { t.Purpose = "changed"; return nil })
		},
	} {
		got, err := get()
		if err != nil || got.RateLimit != limit || got.RateKey != tok.RateKey {
			t.Fatalf("rate limit read back as %+v key %q, %v; want %+v key %q", got.RateLimit, got.RateKey, err, limit, tok.RateKey)
		}
	}
	if got, err := s.Get(ctx, unlimited.ID); err != nil || !got.RateLimit.IsZero() {
		t.Fatalf("a token without a limit read back with %+v, %v", got.RateLimit, err)
	}
	r := NewRequest("alice")
	r.RateLimit = store.RateLimit{Requests: 5000, Window: 24 * time.Hour}
	if err := s.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRequest(ctx, r.ID); err != nil || got.RateLimit != r.RateLimit {
		t.Fatalf("request's rate limit read back as %+v, %v; want %+v", got.RateLimit, err, r.RateLimit)
	}
}

// testBudgetDurable: what a window has taken survives a reopen, so a
// daily quota survives a restart.
func testBudgetDurable(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.New(t)
	window := time.Now().UTC().Truncate(24 * time.Hour)
	take := store.BudgetTake{Key: token.NewID() + "/1000/24h", Window: window, Want: 700, Limit: 1000, KeepUntil: window.Add(24 * time.Hour)}
	if _, _, err := s.TakeBudget(ctx, take); err != nil {
		t.Fatal(err)
	}
	s = b.Reopen(t, s)
	defer s.Close()
	if taken, total, err := s.TakeBudget(ctx, take); err != nil || taken != 300 || total != 1000 {
		t.Fatalf("after reopen a take of 700 took %d, total %d, %v; want 300 of the 1000", taken, total, err)
	}
}
