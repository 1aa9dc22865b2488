package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// testExposure records a leak on a chain, as the leak intake does (the
// secret reported is marked exposed and revoked, its successor revoked),
// and checks that every field reads back, by id and by hash, with the
// state exposed.
func testExposure(t *testing.T, s store.Backend) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	old := NewToken("alice")
	mustCreate(t, s, old)
	next := NewToken("alice")
	if _, err := rotate(t, s, old, next); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	const url = "https://github.com/octo/app/blob/0123abc/config.yaml#L3"
	changed, err := s.UpdateChain(ctx, old.ID, func(tok *store.Token) (bool, error) {
		tok.RevokedAt, tok.RevokedBy, tok.RevokeReason = now, "leaks:github", "leaked"
		if tok.ID == old.ID {
			tok.ExposedAt, tok.ExposureSource, tok.ExposureURL = now, "github", url
		}
		return true, nil
	})
	if err != nil || len(changed) != 2 {
		t.Fatalf("UpdateChain: %d changed, %v", len(changed), err)
	}
	for name, get := range map[string]func() (*store.Token, error){
		"by id":   func() (*store.Token, error) { return s.Get(ctx, old.ID) },
		"by hash": func() (*store.Token, error) { return s.GetByHash(ctx, old.Hash) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.ExposedAt.Equal(now) || got.ExposureSource != "github" || got.ExposureURL != url {
			t.Fatalf("%s: exposure read back as %v %q %q", name, got.ExposedAt, got.ExposureSource, got.ExposureURL)
		}
		if st := store.StateOf(got, now); st != store.StateExposed {
			t.Fatalf("%s: state %s, want exposed", name, st)
		}
	}
	succ, err := s.Get(ctx, next.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !succ.ExposedAt.IsZero() || succ.RevokedAt.IsZero() {
		t.Fatalf("successor: exposed %v revoked %v, want revoked only", succ.ExposedAt, succ.RevokedAt)
	}
	if st := store.StateOf(succ, now); st != store.StateRevoked {
		t.Fatalf("successor state %s, want revoked", st)
	}
}
