package stepup_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/stepup"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/testutil/softkey"
	"github.com/tokengate/caddy-tokengate/store"
)

const (
	rpID   = "localhost"
	origin = "http://localhost:8443"
	alice  = "alice@example.com"
)

// clock is a settable clock for the service.
type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }

func setup(t *testing.T) (*stepup.Service, *clock, *bolt.Store) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{}
	c.now.Store(time.Now().UnixNano())
	s, err := stepup.New(stepup.Config{RPID: rpID, Origins: []string{origin}, Now: c.Now}, db)
	if err != nil {
		t.Fatal(err)
	}
	return s, c, db
}

func register(t *testing.T, s *stepup.Service, principal string, session []byte, key *softkey.Key) {
	t.Helper()
	ctx := context.Background()
	opts, err := s.BeginRegistration(ctx, principal, principal, session)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := key.Register(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishRegistration(ctx, principal, principal, "test key", session, resp); err != nil {
		t.Fatalf("registration: %v", err)
	}
}

func request(id string) *store.Request {
	return &store.Request{
		ID: id, Owner: "bob@example.com", Purpose: "billing export", Scopes: []string{"billing:write"},
		Services: []string{"billing"}, TTL: time.Hour, RequestedBy: "bob@example.com",
		CreatedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Status: store.RequestPending,
	}
}

func assertion(t *testing.T, s *stepup.Service, principal string, b stepup.Binding, key *softkey.Key) []byte {
	t.Helper()
	opts, err := s.BeginAssertion(context.Background(), principal, b)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := key.Assert(opts)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var r *stepup.Refusal
	if !errors.As(err, &r) || r.Reason != reason {
		t.Fatalf("got %v, want refusal %s", err, reason)
	}
}

func TestApprovalNeedsAnAssertionForThatRequest(t *testing.T) {
	s, _, db := setup(t)
	ctx := context.Background()
	session := []byte("session-hash-1")
	key := softkey.New(rpID, origin)
	register(t, s, alice, session, key)

	reqA, reqB := request("req-a"), request("req-b")
	forA := assertion(t, s, alice, stepup.Approval(session, reqA), key)

	// An assertion for A does not approve B, nor A in another session,
	// nor A once its content changed.
	wantReason(t, s.FinishAssertion(ctx, alice, stepup.Approval(session, reqB), forA), stepup.ReasonMismatch)
	wantReason(t, s.FinishAssertion(ctx, alice, stepup.Approval([]byte("session-hash-2"), reqA), forA), stepup.ReasonMismatch)
	widened := request("req-a")
	widened.Scopes = append(widened.Scopes, "billing:delete")
	wantReason(t, s.FinishAssertion(ctx, alice, stepup.Approval(session, widened), forA), stepup.ReasonMismatch)
	// Nor does it stand for a registration.
	wantReason(t, s.FinishAssertion(ctx, alice, stepup.Registration(session), forA), stepup.ReasonMismatch)

	if err := s.FinishAssertion(ctx, alice, stepup.Approval(session, reqA), forA); err != nil {
		t.Fatalf("the assertion for A, for A: %v", err)
	}
	// Once used, never again, on this node or another sharing the store.
	wantReason(t, s.FinishAssertion(ctx, alice, stepup.Approval(session, reqA), forA), stepup.ReasonReplayed)
	other, err := stepup.New(stepup.Config{RPID: rpID, Origins: []string{origin}}, db)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, other.FinishAssertion(ctx, alice, stepup.Approval(session, reqA), forA), stepup.ReasonReplayed)

	keys, err := db.ListSecurityKeys(ctx, alice)
	if err != nil || len(keys) != 1 || keys[0].SignCount != 1 || keys[0].LastUsedAt.IsZero() {
		t.Fatalf("alice's key after one approval: %+v, %v", keys, err)
	}
}

func TestAssertionExpires(t *testing.T) {
	s, c, _ := setup(t)
	session := []byte("session-hash-1")
	key := softkey.New(rpID, origin)
	register(t, s, alice, session, key)
	req := request("req-a")
	late := assertion(t, s, alice, stepup.Approval(session, req), key)
	c.Advance(5*time.Minute + time.Second)
	wantReason(t, s.FinishAssertion(context.Background(), alice, stepup.Approval(session, req), late), stepup.ReasonExpired)
}

func TestOnlyTheApproversOwnKeyCounts(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	session := []byte("session-hash-1")
	bobsKey := softkey.New(rpID, origin)
	register(t, s, "bob@example.com", session, bobsKey)
	alicesKey := softkey.New(rpID, origin)
	register(t, s, alice, session, alicesKey)
	req := request("req-a")
	// Bob's key answering a challenge made for Alice.
	byBob := assertion(t, s, alice, stepup.Approval(session, req), bobsKey)
	wantReason(t, s.FinishAssertion(ctx, alice, stepup.Approval(session, req), byBob), stepup.ReasonInvalid)
	if _, err := s.BeginAssertion(ctx, "carol@example.com", stepup.Approval(session, req)); !errors.Is(err, stepup.ErrNoKeys) {
		t.Fatalf("a person without keys: %v, want ErrNoKeys", err)
	}
}

func TestAssertionFromAnotherOriginIsRefused(t *testing.T) {
	s, _, _ := setup(t)
	session := []byte("session-hash-1")
	key := softkey.New(rpID, origin)
	register(t, s, alice, session, key)
	req := request("req-a")
	key.Origin = "http://evil.example:8443"
	phished := assertion(t, s, alice, stepup.Approval(session, req), key)
	wantReason(t, s.FinishAssertion(context.Background(), alice, stepup.Approval(session, req), phished), stepup.ReasonInvalid)
}

func TestTamperedSignatureIsRefused(t *testing.T) {
	s, _, _ := setup(t)
	session := []byte("session-hash-1")
	key := softkey.New(rpID, origin)
	register(t, s, alice, session, key)
	req := request("req-a")
	resp := assertion(t, s, alice, stepup.Approval(session, req), key)
	forged := softkey.New(rpID, origin) // the same credential id, another private key
	forged.ID = key.ID
	forgedResp := assertion(t, s, alice, stepup.Approval(session, req), forged)
	wantReason(t, s.FinishAssertion(context.Background(), alice, stepup.Approval(session, req), forgedResp), stepup.ReasonInvalid)
	if err := s.FinishAssertion(context.Background(), alice, stepup.Approval(session, req), resp); err != nil {
		t.Fatalf("the genuine assertion after a forged one: %v", err)
	}
}

func TestClonedKeyIsCaughtByItsCounter(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	session := []byte("session-hash-1")
	key := softkey.New(rpID, origin)
	register(t, s, alice, session, key)
	req := request("req-a")
	if err := s.FinishAssertion(ctx, alice, stepup.Approval(session, req), assertion(t, s, alice, stepup.Approval(session, req), key)); err != nil {
		t.Fatal(err)
	}
	key.Count = 0 // a copy of the key made before that use
	wantReason(t, s.FinishAssertion(ctx, alice, stepup.Approval(session, req), assertion(t, s, alice, stepup.Approval(session, req), key)), stepup.ReasonReplayed)
}

func TestRegistrationIsBoundToItsSession(t *testing.T) {
	s, _, db := setup(t)
	ctx := context.Background()
	key := softkey.New(rpID, origin)
	opts, err := s.BeginRegistration(ctx, alice, alice, []byte("session-hash-1"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := key.Register(opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.FinishRegistration(ctx, alice, alice, "k", []byte("session-hash-2"), resp)
	wantReason(t, err, stepup.ReasonMismatch)
	if _, err := s.FinishRegistration(ctx, alice, alice, "k", []byte("session-hash-1"), resp); err != nil {
		t.Fatal(err)
	}
	_, err = s.FinishRegistration(ctx, alice, alice, "k", []byte("session-hash-1"), resp)
	wantReason(t, err, stepup.ReasonReplayed)
	if keys, _ := db.ListSecurityKeys(ctx, alice); len(keys) != 1 {
		t.Fatalf("alice has %d keys, want 1", len(keys))
	}
}

// TestReplayOfACounterlessKeyIsRefused: a key that keeps no counter (zero
// every time) gives the counter rule nothing to catch; the recorded
// challenge does.
func TestReplayOfACounterlessKeyIsRefused(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	session := []byte("session-hash-1")
	key := softkey.New(rpID, origin)
	key.NoCounter = true
	register(t, s, alice, session, key)
	req := request("req-a")
	resp := assertion(t, s, alice, stepup.Approval(session, req), key)
	if err := s.FinishAssertion(ctx, alice, stepup.Approval(session, req), resp); err != nil {
		t.Fatal(err)
	}
	wantReason(t, s.FinishAssertion(ctx, alice, stepup.Approval(session, req), resp), stepup.ReasonReplayed)
	// A fresh assertion of the same key still works.
	if err := s.FinishAssertion(ctx, alice, stepup.Approval(session, req), assertion(t, s, alice, stepup.Approval(session, req), key)); err != nil {
		t.Fatalf("a fresh assertion of a counterless key: %v", err)
	}
}
