package gateway

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/freshness"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// staleFixture is a gate whose freshness a test controls: the gate and
// the tracker share a clock the test moves, and the one confirmation is
// made at the start.
type staleFixture struct {
	*gateFixture
	bolt *bolt.Store
}

func newStaleFixture(t *testing.T, source fs.FS, staleReads bool) *staleFixture {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	engine, err := policy.NewEngine(source)
	if err != nil {
		t.Fatal(err)
	}
	f := &gateFixture{store: &countingStore{Store: b}, now: time.Now().UTC().Truncate(time.Microsecond)}
	clock := func() time.Time { return f.now }
	tracker := freshness.New(2*time.Second, clock)
	tracker.Confirm(f.now)
	f.gate, err = New(Options{
		Store: f.store, Policy: engine, Hasher: token.NewHasher(""),
		DecisionCacheSize: 1000, Now: clock, Fresh: tracker.Fresh, StaleReads: staleReads,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.gate.Close)
	return &staleFixture{gateFixture: f, bolt: b}
}

// A revoke the node was never told of (its feed went silent) is enforced
// once the node is past its staleness bound: the cached allow is not used
// and the store is read. While the store cannot be read, the call fails
// closed with store_unavailable, cached or not.
func TestStaleNodeStopsUsingItsCaches(t *testing.T) {
	f := newStaleFixture(t, policies.FS, false)
	revoked := f.add(t, nil)
	cached := f.add(t, nil)
	for _, secret := range []string{revoked, revoked, cached, cached} {
		f.callCached(t, secret, "GET", "/billing/x")
	}
	expect(t, f.callCached(t, revoked, "GET", "/billing/x"), Allow, CacheHit, "fresh, before the revoke")

	// Revoked behind the node's back: nothing calls Forget.
	rec, err := f.store.GetByHash(context.Background(), hashOf(f.gateFixture, revoked))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Update(context.Background(), rec.ID, func(t *store.Token) error {
		t.RevokedAt = f.now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Within the bound the cache answers: that is the staleness allowed.
	expect(t, f.callCached(t, revoked, "GET", "/billing/x"), Allow, CacheHit, "within the bound")

	f.now = f.now.Add(2*time.Second + time.Millisecond)
	res := f.callCached(t, revoked, "GET", "/billing/x")
	if res.Outcome != Deny || len(res.Reasons()) != 1 || res.Reasons()[0] != reason.TokenRevoked {
		t.Errorf("past the bound: %s %v, want deny [token_revoked]", res.Outcome, res.Reasons())
	}

	f.bolt.Close()
	res = f.callCached(t, cached, "GET", "/billing/x")
	if res.Outcome != Error || len(res.Reasons()) != 1 || res.Reasons()[0] != reason.StoreUnavailable {
		t.Errorf("past the bound with the store down: %s %v (cache %s), want error [store_unavailable]", res.Outcome, res.Reasons(), res.Cache)
	}
}

// With stale reads allowed, a stale node answers a GET whose token and
// read-scoped decision are cached from its caches, and sends anything
// else (a write, a call it has not cached) to the store, which fails
// closed while it is down.
func TestStaleReadsServeOnlyCachedReads(t *testing.T) {
	f := newStaleFixture(t, policies.FS, true)
	secret := f.add(t, func(r *store.Token) { r.Scopes = []string{"billing:read", "billing:write"} })
	for _, m := range []string{"GET", "GET", "POST", "POST"} {
		f.callCached(t, secret, m, "/billing/x")
	}
	f.now = f.now.Add(3 * time.Second)
	f.bolt.Close()

	expect(t, f.callCached(t, secret, "GET", "/billing/x"), Allow, CacheHit, "stale GET")
	for _, m := range []string{"POST", "DELETE", "get"} {
		res := f.callCached(t, secret, m, "/billing/x")
		if res.Outcome != Error || len(res.Reasons()) != 1 || res.Reasons()[0] != reason.StoreUnavailable {
			t.Errorf("stale %s with the store down: %s %v (cache %s), want error [store_unavailable]", m, res.Outcome, res.Reasons(), res.Cache)
		}
	}
}

// A policy that names no scope for a call makes no call read-only: a stale
// node does not answer it from its caches, whatever the method.
func TestStaleReadsNeedAReadScope(t *testing.T) {
	f := newStaleFixture(t, allowEverything, true)
	secret := f.add(t, nil)
	f.callCached(t, secret, "GET", "/billing/x")
	expect(t, f.callCached(t, secret, "GET", "/billing/x"), Allow, CacheHit, "fresh GET")
	f.now = f.now.Add(3 * time.Second)
	f.bolt.Close()
	res := f.callCached(t, secret, "GET", "/billing/x")
	if res.Outcome != Error || len(res.Reasons()) != 1 || res.Reasons()[0] != reason.StoreUnavailable {
		t.Errorf("stale GET without a scope, store down: %s %v (cache %s), want error [store_unavailable]", res.Outcome, res.Reasons(), res.Cache)
	}
}
