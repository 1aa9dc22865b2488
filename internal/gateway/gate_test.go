package gateway

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// allowEverything is the worst gateway policy a user could load: it never
// refuses anything, not even tokens that are revoked or expired.
var allowEverything = fstest.MapFS{"gateway.rego": {Data: []byte(`package tokengate.gateway

reasons contains "never" if input.now < 0
`)}}

// countingStore counts the lookups by hash that reach the store.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (s *countingStore) GetByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	s.lookups.Add(1)
	return s.Store.GetByHash(ctx, hash)
}

type gateFixture struct {
	gate  *Gate
	store *countingStore
	now   time.Time
}

func newGateFixture(t *testing.T, source fs.FS, decisionCache int) *gateFixture {
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
	f.gate, err = New(Options{
		Store: f.store, Policy: engine, Hasher: token.NewHasher(""),
		DecisionCacheSize: decisionCache, Now: func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.gate.Close)
	return f
}

// add stores a live billing:read token changed by edit and returns its
// secret.
func (f *gateFixture) add(t *testing.T, edit func(*store.Token)) string {
	t.Helper()
	secret := token.NewSecret()
	hash := f.gate.hasher.Hash(secret)
	rec := &store.Token{
		ID: token.NewID(), Hash: hash[:], Owner: "alice", Purpose: "test",
		Scopes: []string{"billing:read"}, Services: []string{"billing"},
		NotBefore: f.now.Add(-time.Hour), ExpiresAt: f.now.Add(time.Hour),
		CreatedAt: f.now.Add(-time.Hour), CreatedBy: "test",
	}
	if edit != nil {
		edit(rec)
	}
	if err := f.store.Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return secret
}

func (f *gateFixture) call(secret, method, path string) Result {
	return f.gate.Authorize(context.Background(), &Call{
		Secret: secret, Service: "billing",
		Request: policy.Request{Method: method, Host: "api.example.com", Path: path, RawPath: path, RemoteIP: "10.1.2.3"},
	})
}

// Liveness is decided in Go: a policy that refuses nothing still cannot
// let a dead token through, cached or not.
func TestDeadTokensAreRefusedWhateverThePolicy(t *testing.T) {
	for _, cache := range []int{0, 1000} {
		f := newGateFixture(t, allowEverything, cache)
		now := f.now
		for _, c := range []struct {
			want string
			edit func(*store.Token)
		}{
			{reason.TokenRevoked, func(r *store.Token) { r.RevokedAt, r.RevokedBy = now.Add(-time.Minute), "bob" }},
			{reason.TokenRotated, func(r *store.Token) { r.RotatedTo, r.GraceUntil = "tok_next", now }},
			{reason.TokenExpired, func(r *store.Token) { r.ExpiresAt = now }},
			{reason.TokenNotYetValid, func(r *store.Token) { r.NotBefore = now.Add(time.Second) }},
			{reason.UsesExhausted, func(r *store.Token) { r.MaxUses, r.Uses = 3, 3 }},
		} {
			secret := f.add(t, c.edit)
			for range 2 { // the second call would be a cache hit
				res := f.call(secret, "GET", "/billing/x")
				if res.Outcome != Deny || res.Reasons()[0] != c.want {
					t.Errorf("cache %d: %s token: %s %v, want deny %s", cache, c.want, res.Outcome, res.Reasons(), c.want)
				}
			}
		}
		// A live token passes the permissive policy.
		if res := f.call(f.add(t, nil), "DELETE", "/billing/x"); res.Outcome != Allow {
			t.Errorf("cache %d: live token: %s %v", cache, res.Outcome, res.Reasons())
		}
	}
}

// A cached allow never outlives the token: the liveness check runs on
// every call, before the cache.
func TestCachedAllowDoesNotOutliveRevocation(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	var id string
	secret := f.add(t, func(r *store.Token) { id = r.ID })
	for range 2 {
		if res := f.call(secret, "GET", "/billing/x"); res.Outcome != Allow {
			t.Fatalf("%s %v", res.Outcome, res.Reasons())
		}
	}
	// Revoke behind the gate's back (as another node would, before its
	// notification arrives) and move past the token cache bound.
	if _, err := f.store.Update(context.Background(), id, func(r *store.Token) error {
		r.RevokedAt = f.now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(CacheBound)
	if res := f.call(secret, "GET", "/billing/x"); res.Outcome != Deny || res.Reasons()[0] != reason.TokenRevoked {
		t.Fatalf("after revoke: %s %v", res.Outcome, res.Reasons())
	}
}

// Allow is derived from the reasons: a reason added by a user rule takes
// effect with the cache on and off.
func TestAddedReasonTakesEffect(t *testing.T) {
	source := fstest.MapFS{}
	for _, name := range []string{"gateway.rego", "admin.rego"} {
		src, err := policies.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		source[name] = &fstest.MapFile{Data: src}
	}
	source["internal_paths.rego"] = &fstest.MapFile{Data: []byte(`package tokengate.gateway

reasons contains "path_forbidden" if startswith(input.request.path, "/billing/internal/")
`)}
	for _, cache := range []int{0, 1000} {
		f := newGateFixture(t, source, cache)
		secret := f.add(t, nil)
		for range 2 {
			if res := f.call(secret, "GET", "/billing/internal/k"); res.Outcome != Deny || res.Reasons()[0] != "path_forbidden" {
				t.Errorf("cache %d: %s %v, want deny path_forbidden", cache, res.Outcome, res.Reasons())
			}
			if res := f.call(secret, "GET", "/billing/public/k"); res.Outcome != Allow {
				t.Errorf("cache %d: public path: %s %v", cache, res.Outcome, res.Reasons())
			}
		}
	}
}

// Well-formed tokens the store does not have are remembered, so a flood
// of them reaches the store once per token, not once per call.
func TestUnknownTokensAreRememberedForAWhile(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	unknown := token.NewSecret()
	for range 5 {
		if res := f.call(unknown, "GET", "/billing/x"); res.Outcome != Deny || res.Reasons()[0] != reason.TokenUnknown {
			t.Fatalf("%s %v", res.Outcome, res.Reasons())
		}
	}
	if n := f.store.lookups.Load(); n != 1 {
		t.Fatalf("%d store lookups for 5 calls with one unknown token, want 1", n)
	}
	f.now = f.now.Add(UnknownBound)
	f.call(unknown, "GET", "/billing/x")
	if n := f.store.lookups.Load(); n != 2 {
		t.Fatalf("after UnknownBound: %d lookups, want 2 (the memory must expire)", n)
	}
	// Known tokens are not affected, and a store failure is never
	// remembered as "unknown".
	if res := f.call(f.add(t, nil), "GET", "/billing/x"); res.Outcome != Allow {
		t.Fatalf("known token: %s %v", res.Outcome, res.Reasons())
	}
	failing := &countingStore{Store: failingStore{f.store.Store}}
	f.gate.store = failing
	other := token.NewSecret()
	for range 2 {
		if res := f.call(other, "GET", "/billing/x"); res.Outcome != Error {
			t.Fatalf("store down: %s %v", res.Outcome, res.Reasons())
		}
	}
	if n := failing.lookups.Load(); n != 2 {
		t.Fatalf("store down: %d lookups, want 2", n)
	}
}

type failingStore struct{ store.Store }

func (failingStore) GetByHash(context.Context, []byte) (*store.Token, error) {
	return nil, errors.New("connection refused")
}

// A hold (the audit log cannot record the call) refuses an allowed call
// before it spends a use.
func TestHoldRefusesBeforeAUseIsSpent(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	held := reason.AuditUnavailable
	f.gate.hold = func() string { return held }
	var id string
	secret := f.add(t, func(r *store.Token) { r.MaxUses, id = 2, r.ID })
	if res := f.call(secret, "GET", "/billing/x"); res.Outcome != Error || res.Reasons()[0] != reason.AuditUnavailable {
		t.Fatalf("held: %s %v", res.Outcome, res.Reasons())
	}
	held = ""
	for range 2 {
		if res := f.call(secret, "GET", "/billing/x"); res.Outcome != Allow {
			t.Fatalf("released: %s %v", res.Outcome, res.Reasons())
		}
	}
	rec, err := f.store.Get(context.Background(), id)
	if err != nil || rec.Uses != 2 {
		t.Fatalf("uses %d (%v), want 2: the held call must not spend one", rec.Uses, err)
	}
}
