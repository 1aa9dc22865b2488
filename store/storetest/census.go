package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// testCount gives the store one token per way a state can arise, with
// times on both sides of every boundary, and checks that Count finds what
// StateOf says about each record, the expiring-soon window included at its
// edge.
func testCount(t *testing.T, s store.Backend) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	const week = 7 * 24 * time.Hour
	type shape func(*store.Token)
	cases := []struct {
		want     string
		expiring bool
		shape    shape
	}{
		{store.StateActive, false, func(*store.Token) {}},
		{store.StateActive, false, func(t *store.Token) { t.NotBefore = time.Time{} }},
		{store.StateActive, false, func(t *store.Token) { t.NotBefore = now }},
		{store.StateActive, true, func(t *store.Token) { t.ExpiresAt = now.Add(time.Minute) }},
		{store.StateActive, true, func(t *store.Token) { t.ExpiresAt = now.Add(week) }},
		{store.StateActive, false, func(t *store.Token) { t.ExpiresAt = now.Add(week + time.Microsecond) }},
		{store.StateActive, false, func(t *store.Token) { t.MaxUses, t.Uses = 3, 2 }},
		{store.StatePending, false, func(t *store.Token) {
			t.NotBefore, t.ExpiresAt = now.Add(time.Microsecond), now.Add(30*24*time.Hour)
		}},
		{store.StatePending, true, func(t *store.Token) { t.NotBefore, t.ExpiresAt = now.Add(time.Hour), now.Add(2*time.Hour) }},
		{store.StateExpired, false, func(t *store.Token) { t.ExpiresAt = now }},
		{store.StateExpired, false, func(t *store.Token) { t.ExpiresAt = now.Add(-time.Hour) }},
		{store.StateExpired, false, func(t *store.Token) { t.ExpiresAt, t.MaxUses, t.Uses = now, 1, 1 }},
		{store.StateExpired, false, func(t *store.Token) { t.ExpiresAt = time.Time{} }},
		{store.StateExhausted, false, func(t *store.Token) { t.MaxUses, t.Uses = 1, 1 }},
		{store.StateRotating, false, func(t *store.Token) { t.RotatedTo, t.GraceUntil = "tok_next1", now.Add(time.Minute) }},
		{store.StateRotated, false, func(t *store.Token) { t.RotatedTo, t.GraceUntil = "tok_next2", now }},
		{store.StateRotated, false, func(t *store.Token) { t.RotatedTo = "tok_next3" }},
		{store.StateRotated, false, func(t *store.Token) { t.RotatedTo, t.ExpiresAt = "tok_next4", now.Add(-time.Hour) }},
		{store.StateRevoked, false, func(t *store.Token) { t.RevokedAt, t.RevokedBy = now.Add(-time.Minute), "alice" }},
		{store.StateRevoked, false, func(t *store.Token) {
			t.RevokedAt, t.RotatedTo, t.GraceUntil = now.Add(-time.Minute), "tok_next5", now.Add(time.Hour)
		}},
		{store.StateExposed, false, func(t *store.Token) {
			t.RevokedAt, t.ExposedAt, t.ExposureSource = now.Add(-time.Minute), now.Add(-time.Minute), "github"
		}},
		{store.StateExposed, false, func(t *store.Token) {
			t.RevokedAt, t.ExposedAt, t.RotatedTo, t.GraceUntil = now, now, "tok_next6", now.Add(time.Hour)
		}},
	}
	want := store.NewCensus()
	for i, c := range cases {
		tok := NewToken("census")
		tok.NotBefore, tok.ExpiresAt = now.Add(-time.Hour), now.Add(30*24*time.Hour)
		c.shape(tok)
		if got := store.StateOf(tok, now); got != c.want {
			t.Fatalf("case %d: StateOf = %s, want %s", i, got, c.want)
		}
		mustCreate(t, s, tok)
		want.Tokens[c.want]++
		if c.expiring {
			want.ExpiringSoon++
		}
	}
	for _, status := range []string{store.RequestPending, store.RequestPending, store.RequestApproved, store.RequestDenied} {
		r := NewRequest("alice")
		r.Status = status
		if err := s.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want.PendingRequests = 2

	// The backend's own count, and the listing fallback (the embedding
	// hides a Count method) that backends without one get.
	for _, b := range []store.Backend{s, struct{ store.Backend }{s}} {
		got, err := store.Count(ctx, b, now, week)
		if err != nil {
			t.Fatal(err)
		}
		checkCensus(t, got, want)
	}
}

func checkCensus(t *testing.T, got, want *store.Census) {
	t.Helper()
	for _, state := range store.States {
		if got.Tokens[state] != want.Tokens[state] {
			t.Errorf("%s: %d tokens, want %d", state, got.Tokens[state], want.Tokens[state])
		}
	}
	if len(got.Tokens) != len(store.States) {
		t.Errorf("states counted: %v, want exactly %v", got.Tokens, store.States)
	}
	if got.ExpiringSoon != want.ExpiringSoon {
		t.Errorf("expiring soon: %d, want %d", got.ExpiringSoon, want.ExpiringSoon)
	}
	if got.PendingRequests != want.PendingRequests {
		t.Errorf("pending requests: %d, want %d", got.PendingRequests, want.PendingRequests)
	}
}
