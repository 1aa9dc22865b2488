package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

const (
	pepperA = "pepper-A-going-out"
	pepperB = "pepper-B-coming-in"
)

// flakyRekeyStore fails the first rekeys it is asked for, as a store that
// drops the connection would.
type flakyRekeyStore struct {
	*countingStore
	failures atomic.Int64
}

func (s *flakyRekeyStore) Rekey(ctx context.Context, oldHash, newHash []byte) (*store.Token, error) {
	if s.failures.Add(-1) >= 0 {
		return nil, errors.New("connection reset")
	}
	return s.countingStore.Rekey(ctx, oldHash, newHash)
}

// rotatingGate returns a gate on st, sharing f's policy and clock, that
// hashes with pepper and, when previous is not empty, falls back to it;
// rekeyed collects the ids it re-keyed.
func rotatingGate(t *testing.T, f *gateFixture, st store.Store, pepper, previous string, rekeyed *[]string) *Gate {
	t.Helper()
	o := Options{Store: st, Policy: f.gate.policy, Hasher: token.NewHasher(pepper), Now: func() time.Time { return f.now },
		OnRekey: func(id string) { *rekeyed = append(*rekeyed, id) }}
	if previous != "" {
		o.PreviousHasher = token.NewHasher(previous)
	}
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func authorize(g *Gate, secret string) Result {
	return g.Authorize(context.Background(), &Call{Secret: secret, Service: "billing",
		Request: policy.Request{Method: "GET", Host: "api.example.com", Path: "/billing/x", RawPath: "/billing/x", RemoteIP: "10.1.2.3"}})
}

// A secret stored under the previous pepper is found, re-keyed to the
// current pepper's hash (limited or not), and keeps working on a gate that
// has only the current pepper; one unknown under both stays unknown.
func TestPreviousPepperRekeysOnUse(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	f.gate.hasher = token.NewHasher(pepperA)
	unlimited := f.add(t, nil)
	limited := f.add(t, func(r *store.Token) { r.MaxUses = 5 })
	idle := f.add(t, nil)

	var rekeyed []string
	during := rotatingGate(t, f, f.store, pepperB, pepperA, &rekeyed)
	for _, secret := range []string{unlimited, limited} {
		if res := authorize(during, secret); res.Outcome != Allow {
			t.Fatalf("under previous_pepper: %s %v", res.Outcome, res.Reasons())
		}
		newHash, oldHash := token.NewHasher(pepperB).Hash(secret), token.NewHasher(pepperA).Hash(secret)
		if _, err := f.store.GetByHash(context.Background(), oldHash[:]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the previous pepper's hash still finds the token: %v", err)
		}
		if _, err := f.store.GetByHash(context.Background(), newHash[:]); err != nil {
			t.Errorf("the current pepper's hash does not find the token: %v", err)
		}
	}
	if len(rekeyed) != 2 {
		t.Fatalf("rekeyed %v, want the two tokens used", rekeyed)
	}
	stranger := token.NewSecret()
	if res := authorize(during, stranger); res.Outcome != Deny || res.Reasons()[0] != reason.TokenUnknown {
		t.Fatalf("a secret unknown under both peppers: %s %v", res.Outcome, res.Reasons())
	}

	after := rotatingGate(t, f, f.store, pepperB, "", &rekeyed)
	for _, secret := range []string{unlimited, limited} {
		if res := authorize(after, secret); res.Outcome != Allow {
			t.Fatalf("re-keyed token once previous_pepper is gone: %s %v", res.Outcome, res.Reasons())
		}
	}
	if res := authorize(after, idle); res.Outcome != Deny || res.Reasons()[0] != reason.TokenUnknown {
		t.Fatalf("token never used during the overlap: %s %v, want token_unknown", res.Outcome, res.Reasons())
	}
	if len(rekeyed) != 2 {
		t.Fatalf("a gate without previous_pepper re-keyed: %v", rekeyed)
	}
}

// The unknown-hash cache remembers a secret only once both peppers were
// tried: a failed lookup under the previous pepper is a store error, and
// the next call finds the token.
func TestUnknownCacheWaitsForThePreviousPepper(t *testing.T) {
	f := newGateFixture(t, policies.FS, 1000)
	f.gate.hasher = token.NewHasher(pepperA)
	secret := f.add(t, nil)
	flaky := &flakyRekeyStore{countingStore: f.store}
	flaky.failures.Store(1)
	var rekeyed []string
	g := rotatingGate(t, f, flaky, pepperB, pepperA, &rekeyed)
	if res := authorize(g, secret); res.Outcome != Error || res.Reasons()[0] != reason.StoreUnavailable {
		t.Fatalf("while the rekey fails: %s %v, want error store_unavailable", res.Outcome, res.Reasons())
	}
	if res := authorize(g, secret); res.Outcome != Allow {
		t.Fatalf("once the store answers again: %s %v, want allow", res.Outcome, res.Reasons())
	}

	// A secret unknown under both is remembered: the next call does not
	// reach the store.
	stranger := token.NewSecret()
	authorize(g, stranger)
	before := f.store.lookups.Load()
	if res := authorize(g, stranger); res.Outcome != Deny || res.Reasons()[0] != reason.TokenUnknown {
		t.Fatalf("stranger: %s %v", res.Outcome, res.Reasons())
	}
	if got := f.store.lookups.Load() - before; got != 0 {
		t.Fatalf("a remembered unknown secret reached the store %d times", got)
	}
}
