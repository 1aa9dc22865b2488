package gateway

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// callCached makes one call and waits until its decision, if any, is in
// the cache (ristretto applies sets asynchronously).
func (f *gateFixture) callCached(t *testing.T, secret, method, path string) Result {
	t.Helper()
	res := f.call(secret, method, path)
	f.gate.decisions.Wait()
	return res
}

func expect(t *testing.T, res Result, outcome, cache, path string) {
	t.Helper()
	if res.Outcome != outcome || res.Cache != cache {
		t.Errorf("%s: %s (cache %s) %v, want %s (cache %s)", path, res.Outcome, res.Cache, res.Reasons(), outcome, cache)
	}
}

// The shipped policy never reads the path, so ids in paths share one
// decision; the method, which it reads, still tells calls apart.
func TestShippedPolicySharesDecisionsAcrossPaths(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	secret := f.add(t, nil)
	expect(t, f.callCached(t, secret, "GET", "/billing/items/1"), Allow, CacheMiss, "/billing/items/1")
	expect(t, f.callCached(t, secret, "GET", "/billing/items/2"), Allow, CacheHit, "/billing/items/2")
	expect(t, f.callCached(t, secret, "POST", "/billing/items/1"), Deny, CacheMiss, "POST /billing/items/1")
	expect(t, f.callCached(t, secret, "POST", "/billing/items/3"), Deny, CacheHit, "POST /billing/items/3")
}

// The shipped policy reads the client address only for tokens bound to
// CIDRs: a token without them shares one decision across addresses, a
// token with them never carries an allow to an address outside them.
func TestClientAddressIsKeyedOnlyForTokensWithCIDRs(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	from := func(secret, ip string) Result {
		res := f.gate.Authorize(context.Background(), &Call{
			Secret: secret, Service: "billing",
			Request: policy.Request{Method: "GET", Host: "api.example.com", Path: "/billing/x", RawPath: "/billing/x", RemoteIP: ip},
		})
		f.gate.decisions.Wait()
		return res
	}
	anywhere := f.add(t, nil)
	expect(t, from(anywhere, "10.1.2.3"), Allow, CacheMiss, "no CIDRs, 10.1.2.3")
	expect(t, from(anywhere, "192.0.2.7"), Allow, CacheHit, "no CIDRs, 192.0.2.7")

	bound := f.add(t, func(r *store.Token) { r.CIDRs = []string{"10.0.0.0/8"} })
	expect(t, from(bound, "10.1.2.3"), Allow, CacheMiss, "10.0.0.0/8, 10.1.2.3")
	expect(t, from(bound, "10.1.2.3"), Allow, CacheHit, "10.0.0.0/8, 10.1.2.3 again")
	res := from(bound, "192.0.2.7")
	expect(t, res, Deny, CacheMiss, "10.0.0.0/8, 192.0.2.7")
	if len(res.Reasons()) != 1 || res.Reasons()[0] != reason.IPNotAllowed {
		t.Errorf("reasons %v, want %s", res.Reasons(), reason.IPNotAllowed)
	}
	expect(t, from(bound, "192.0.2.7"), Deny, CacheHit, "10.0.0.0/8, 192.0.2.7 again")
}

// A policy that reads the path keys on it: an allow cached for one path
// never answers another.
func TestPolicyReadingThePathKeysOnIt(t *testing.T) {
	source := fstest.MapFS{
		"gateway.rego": {Data: mustRead(t, "gateway.rego")},
		"internal.rego": {Data: []byte(`package tokengate.gateway

reasons contains "path_forbidden" if startswith(input.request.path, "/billing/internal/")
`)},
	}
	f := newGateFixture(t, source, 1000)
	secret := f.add(t, nil)
	expect(t, f.callCached(t, secret, "GET", "/billing/items/1"), Allow, CacheMiss, "/billing/items/1")
	expect(t, f.callCached(t, secret, "GET", "/billing/items/1"), Allow, CacheHit, "/billing/items/1 again")
	res := f.callCached(t, secret, "GET", "/billing/internal/1")
	expect(t, res, Deny, CacheMiss, "/billing/internal/1")
	if len(res.Reasons()) != 1 || res.Reasons()[0] != "path_forbidden" {
		t.Errorf("reasons %v, want path_forbidden", res.Reasons())
	}
	expect(t, f.callCached(t, secret, "GET", "/billing/items/2"), Allow, CacheMiss, "/billing/items/2")
}

// The reads belong to the compiled revision, which is in the key: a rule
// added at runtime that reads the path takes effect on the very next call,
// cached decisions of the old revision notwithstanding.
func TestRuleAddedAtRuntimeChangesTheKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gateway.rego"), mustRead(t, "gateway.rego"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newGateFixture(t, os.DirFS(dir), 1000)
	secret := f.add(t, nil)
	expect(t, f.callCached(t, secret, "GET", "/billing/items/1"), Allow, CacheMiss, "/billing/items/1")
	expect(t, f.callCached(t, secret, "GET", "/billing/items/2"), Allow, CacheHit, "/billing/items/2")

	if err := os.WriteFile(filepath.Join(dir, "block.rego"), []byte(`package tokengate.gateway

reasons contains "item_blocked" if input.request.path == "/billing/items/2"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.gate.policy.Reload(); err != nil {
		t.Fatal(err)
	}
	res := f.callCached(t, secret, "GET", "/billing/items/2")
	expect(t, res, Deny, CacheMiss, "/billing/items/2 after reload")
	if len(res.Reasons()) != 1 || res.Reasons()[0] != "item_blocked" {
		t.Errorf("reasons %v, want item_blocked", res.Reasons())
	}
	expect(t, f.callCached(t, secret, "GET", "/billing/items/1"), Allow, CacheMiss, "/billing/items/1 after reload")
	expect(t, f.callCached(t, secret, "GET", "/billing/items/3"), Allow, CacheMiss, "/billing/items/3 after reload")
	expect(t, f.callCached(t, secret, "GET", "/billing/items/2"), Deny, CacheHit, "/billing/items/2 again")
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := policies.FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A cache sized for N decisions holds N of them: each costs 1, with none of
// ristretto's own bookkeeping added to the count.
func TestDecisionCacheHoldsItsConfiguredSize(t *testing.T) {
	const size = 200
	f := newGateFixture(t, policies.FS, size)
	secrets := make([]string, size/2)
	for i := range secrets {
		secrets[i] = f.add(t, nil)
		f.callCached(t, secrets[i], "GET", "/billing/x")
	}
	hits := 0
	for _, s := range secrets {
		if f.callCached(t, s, "GET", "/billing/x").Cache == CacheHit {
			hits++
		}
	}
	// Half the capacity is used; ristretto's sampled eviction may still
	// drop the odd entry, never most of them.
	if hits < len(secrets)*9/10 {
		t.Errorf("%d of %d decisions were still cached in a cache sized %d", hits, len(secrets), size)
	}
}
