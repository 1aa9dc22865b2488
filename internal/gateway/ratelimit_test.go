package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/store"
)

// A token's own limit and the policy's are enforced after the decision
// and before a use is spent; the stricter wins; refused calls of another
// reason do not count; a cached decision keeps its limit; a token without
// a limit is untouched.
func TestRateLimitsAreEnforced(t *testing.T) {
	for _, cache := range []int{0, 1000} {
		f := newGateFixture(t, withRule(t, `rate_limit := {"requests": 2, "window": "1m"} if input.request.path == "/billing/strict"`), cache)
		// Leases are refilled in the background, as in production.
		ctx, cancel := context.WithCancel(context.Background())
		running := make(chan struct{})
		go func() { f.gate.Run(ctx); close(running) }()
		t.Cleanup(func() { cancel(); <-running })
		perMinute := func(n int64) func(*store.Token) {
			return func(r *store.Token) { r.RateLimit = store.RateLimit{Requests: n, Window: time.Minute} }
		}
		calls := func(secret, method, path string, n int) (allowed int, last Result) {
			for range n {
				if last = f.callSettled(secret, method, path); last.Outcome == Allow {
					allowed++
				}
			}
			return allowed, last
		}

		own := f.add(t, perMinute(3))
		// A call the policy refuses is not counted.
		if res := f.call(own, "POST", "/billing/x"); res.Outcome != Deny || res.Reasons()[0] != reason.ScopeMissing {
			t.Fatalf("cache %d: POST with billing:read: %+v", cache, res)
		}
		allowed, last := calls(own, "GET", "/billing/x", 5)
		if allowed != 3 || last.Outcome != Deny || len(last.Reasons()) != 1 || last.Reasons()[0] != reason.RateLimited {
			t.Fatalf("cache %d: a token limited to 3/1m passed %d of 5 calls, last %+v", cache, allowed, last)
		}
		if last.RateLimit.Limit != (store.RateLimit{Requests: 3, Window: time.Minute}) || last.RateLimit.Remaining != 0 {
			t.Fatalf("cache %d: the refusal's limit %+v", cache, last.RateLimit)
		}

		// The policy's 2/1m is stricter than the token's 5/1m.
		both := f.add(t, perMinute(5))
		if allowed, last := calls(both, "GET", "/billing/strict", 4); allowed != 2 || last.Reasons()[0] != reason.RateLimited {
			t.Fatalf("cache %d: policy 2/1m and token 5/1m passed %d of 4", cache, allowed)
		}
		// The policy's limit alone, on a token without one.
		policyOnly := f.add(t, nil)
		if allowed, _ := calls(policyOnly, "GET", "/billing/strict", 4); allowed != 2 {
			t.Fatalf("cache %d: the policy's 2/1m passed %d of 4", cache, allowed)
		}

		// A refused call spends no use.
		used := f.add(t, func(r *store.Token) { perMinute(1)(r); r.MaxUses = 10 })
		calls(used, "GET", "/billing/x", 3)
		rec, err := f.store.GetByHash(context.Background(), hashOf(f, used))
		if err != nil || rec.Uses != 1 {
			t.Fatalf("cache %d: after 1 allowed and 2 rate-limited calls the token has spent %d uses, %v; want 1", cache, rec.Uses, err)
		}

		unlimited := f.add(t, nil)
		allowed, last = calls(unlimited, "GET", "/billing/x", 50)
		if allowed != 50 || !last.RateLimit.Limit.IsZero() {
			t.Fatalf("cache %d: a token without a limit passed %d of 50 (%+v)", cache, allowed, last.RateLimit)
		}

		// A successor of own, as Rotate makes it, counts with own: its
		// window is spent already.
		ownID := idOf(t, f, own)
		successor := f.add(t, func(r *store.Token) { perMinute(3)(r); r.RateKey = ownID })
		if res := f.call(successor, "GET", "/billing/x"); res.Outcome != Deny || res.Reasons()[0] != reason.RateLimited {
			t.Fatalf("cache %d: a rotated token's first call after its predecessor's 3 of 3/1m: %+v", cache, res)
		}

		// The next window starts afresh.
		f.now = f.now.Add(time.Minute)
		if res := f.call(own, "GET", "/billing/x"); res.Outcome != Allow {
			t.Fatalf("cache %d: next window: %+v", cache, res)
		}
	}
}

func hashOf(f *gateFixture, secret string) []byte {
	h := f.gate.hasher.Hash(secret)
	return h[:]
}

func idOf(t *testing.T, f *gateFixture, secret string) string {
	t.Helper()
	rec, err := f.store.GetByHash(context.Background(), hashOf(f, secret))
	if err != nil {
		t.Fatal(err)
	}
	return rec.ID
}
