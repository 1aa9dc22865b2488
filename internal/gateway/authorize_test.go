package gateway

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// withRule is the shipped gateway policy plus extra, as a user would
// add a file to the policy folder.
func withRule(t *testing.T, extra string) fstest.MapFS {
	t.Helper()
	src, err := policies.FS.ReadFile("gateway.rego")
	if err != nil {
		t.Fatal(err)
	}
	return fstest.MapFS{"gateway.rego": {Data: src}, "extra.rego": {Data: []byte("package tokengate.gateway\n\n" + extra + "\n")}}
}

// callSettled is call after the decision cache has taken in what earlier
// calls stored (ristretto applies writes asynchronously).
func (f *gateFixture) callSettled(secret, method, path string) Result {
	if f.gate.decisions != nil {
		f.gate.decisions.Wait()
	}
	return f.call(secret, method, path)
}

// A cached decision is reused only within the shortest of CacheBound, the
// policy's ttl_seconds and the next change of the token's own timestamps.
func TestDecisionCacheBounds(t *testing.T) {
	cases := []struct {
		name   string
		source fstest.MapFS
		edit   func(f *gateFixture) func(*store.Token)
		bound  time.Duration
	}{
		{"CacheBound", nil, nil, CacheBound},
		{"ttl_seconds", withRule(t, "ttl_seconds := 30"), nil, 30 * time.Second},
		{"expiry", nil, func(f *gateFixture) func(*store.Token) {
			return func(r *store.Token) { r.ExpiresAt = f.now.Add(10 * time.Second) }
		}, 10 * time.Second},
		{"rotation grace", nil, func(f *gateFixture) func(*store.Token) {
			return func(r *store.Token) { r.RotatedTo, r.GraceUntil = "tok_next", f.now.Add(20*time.Second) }
		}, 20 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			source := c.source
			if source == nil {
				source = withRule(t, "")
			}
			f := newGateFixture(t, source, 1000)
			var edit func(*store.Token)
			if c.edit != nil {
				edit = c.edit(f)
			}
			secret := f.add(t, edit)
			start := f.now
			if res := f.call(secret, "GET", "/billing/x"); res.Outcome != Allow || res.Cache != CacheMiss {
				t.Fatalf("first call: %s %v %s", res.Outcome, res.Reasons(), res.Cache)
			}
			f.now = start.Add(c.bound - time.Millisecond)
			if res := f.callSettled(secret, "GET", "/billing/x"); res.Cache != CacheHit {
				t.Fatalf("just inside the bound: %s %v %s, want a hit", res.Outcome, res.Reasons(), res.Cache)
			}
			f.now = start.Add(c.bound)
			if res := f.callSettled(secret, "GET", "/billing/x"); res.Cache == CacheHit {
				t.Fatalf("at the bound: %s %v, a cached decision outlived its bound", res.Outcome, res.Reasons())
			}
		})
	}
}

// A use-limited token spends one use per allowed call, atomically: its
// allows are never served from the cache, and no more calls pass than it
// has uses, however many arrive at once.
func TestUsesAreConsumed(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	var id string
	secret := f.add(t, func(r *store.Token) { r.MaxUses, id = 5, r.ID })
	// A refused call spends nothing.
	if res := f.call(secret, "POST", "/billing/x"); res.Outcome != Deny || res.Reasons()[0] != reason.ScopeMissing {
		t.Fatalf("write with a read token: %s %v", res.Outcome, res.Reasons())
	}
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			res := f.call(secret, "GET", "/billing/x")
			mu.Lock()
			defer mu.Unlock()
			outcomes[res.Outcome+" "+res.Cache]++
			if res.Outcome == Deny && res.Reasons()[0] != reason.UsesExhausted {
				t.Errorf("deny %v, want uses_exhausted", res.Reasons())
			}
		})
	}
	wg.Wait()
	if outcomes[Allow+" "+CacheMiss] != 5 || outcomes[Allow+" "+CacheHit] != 0 {
		t.Fatalf("outcomes %v, want exactly 5 allows, none cached", outcomes)
	}
	rec, err := f.store.Get(context.Background(), id)
	if err != nil || rec.Uses != 5 {
		t.Fatalf("uses %d (%v), want 5", rec.Uses, err)
	}
}

// consumeFailing is a store whose ConsumeUse fails.
type consumeFailing struct{ store.Store }

func (consumeFailing) ConsumeUse(context.Context, string, store.Usage) (*store.Token, error) {
	return nil, errors.New("connection reset")
}

// Every failure maps to an outcome and a reason: bad envelopes are denied
// before any store lookup, store and policy failures are errors (fail
// closed) carrying the cause for the operator's log.
func TestAuthorizeErrorMapping(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	live := f.add(t, nil)
	limited := f.add(t, func(r *store.Token) { r.MaxUses = 3 })

	res := f.gate.Authorize(context.Background(), &Call{Problem: reason.TokenMissing, Service: "billing"})
	if res.Outcome != Deny || res.Reasons()[0] != reason.TokenMissing || res.Err != nil {
		t.Errorf("problem: %+v", res)
	}
	flipped := []byte(token.NewSecret())
	flipped[8] ^= 1
	if res := f.call(string(flipped), "GET", "/billing/x"); res.Outcome != Deny || res.Reasons()[0] != reason.TokenMalformed {
		t.Errorf("checksum mismatch: %+v", res)
	}
	if n := f.store.lookups.Load(); n != 0 {
		t.Errorf("%d store lookups for malformed calls, want 0", n)
	}

	f.gate.store = consumeFailing{f.store}
	if res := f.call(limited, "GET", "/billing/x"); res.Outcome != Error || res.Reasons()[0] != reason.StoreUnavailable || res.Err == nil {
		t.Errorf("consume failing: %+v", res)
	}
	f.gate.store = failingStore{f.store.Store}
	if res := f.call(token.NewSecret(), "GET", "/billing/x"); res.Outcome != Error || res.Reasons()[0] != reason.StoreUnavailable || res.Err == nil {
		t.Errorf("lookup failing: %+v", res)
	}
	// The live token is cached; the store being down does not matter to it.
	f.gate.store = f.store
	if res := f.call(live, "GET", "/billing/x"); res.Outcome != Allow {
		t.Errorf("live: %+v", res)
	}

	// A policy whose evaluation fails (a strict builtin error) is an
	// error, never an allow, cached or not.
	for _, cache := range []int{0, 1000} {
		g := newGateFixture(t, withRule(t, `reasons contains "never" if to_number(input.request.path) < 0`), cache)
		secret := g.add(t, nil)
		for range 2 {
			if res := g.callSettled(secret, "GET", "/billing/x"); res.Outcome != Error || res.Reasons()[0] != reason.PolicyUnavailable || res.Err == nil {
				t.Errorf("cache %d: policy error: %s %v %v", cache, res.Outcome, res.Reasons(), res.Err)
			}
		}
	}
}
