package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// chainOf creates a token rotated twice: first -> middle -> newest.
func chainOf(t *testing.T, s store.Backend) []*store.Token {
	t.Helper()
	chain := []*store.Token{NewToken("alice"), NewToken("alice"), NewToken("alice")}
	mustCreate(t, s, chain[0])
	for i := 1; i < len(chain); i++ {
		if _, err := rotate(t, s, chain[i-1], chain[i]); err != nil {
			t.Fatal(err)
		}
	}
	return chain
}

func ids(toks []*store.Token) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.ID
	}
	return out
}

// revokeAll is a change for UpdateChain that revokes every token not
// revoked yet.
func revokeAll(at time.Time) func(*store.Token) (bool, error) {
	return func(t *store.Token) (bool, error) {
		if !t.RevokedAt.IsZero() {
			return false, nil
		}
		t.RevokedAt, t.RevokedBy = at, "conformance"
		return true, nil
	}
}

// testUpdateChain: from any id of a chain, UpdateChain sees every token of
// it, oldest first, and stores (with a grown Version) exactly the ones
// change changed.
func testUpdateChain(t *testing.T, s store.Backend) {
	ctx := context.Background()
	for start := range 3 {
		chain := chainOf(t, s)
		var seen []string
		// Every token but the middle one is changed.
		changed, err := s.UpdateChain(ctx, chain[start].ID, func(tok *store.Token) (bool, error) {
			seen = append(seen, tok.ID)
			if tok.ID == chain[1].ID {
				return false, nil
			}
			tok.RevokeReason = "chain"
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := ids(chain); !slices.Equal(seen, want) {
			t.Fatalf("from token %d the walk saw %v, want %v (oldest first)", start, seen, want)
		}
		if got, want := ids(changed), []string{chain[0].ID, chain[2].ID}; !slices.Equal(got, want) {
			t.Fatalf("from token %d returned %v, want the changed %v", start, got, want)
		}
		for i, tok := range chain {
			stored, _ := s.Get(ctx, tok.ID)
			wantReason := "chain"
			if i == 1 {
				wantReason = ""
			}
			if stored.RevokeReason != wantReason {
				t.Fatalf("token %d stored reason %q, want %q", i, stored.RevokeReason, wantReason)
			}
		}
		for _, c := range changed {
			if c.RevokeReason != "chain" {
				t.Fatalf("returned record %s lacks the change", c.ID)
			}
		}
	}
	if _, err := s.UpdateChain(ctx, NewToken("x").ID, revokeAll(time.Now())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing id: %v, want ErrNotFound", err)
	}
}

// testUpdateChainVersion: every stored change grows the Version, which
// decision caches key on.
func testUpdateChainVersion(t *testing.T, s store.Backend) {
	ctx := context.Background()
	chain := chainOf(t, s)
	var before []uint64
	for _, tok := range chain {
		got, _ := s.Get(ctx, tok.ID)
		before = append(before, got.Version)
	}
	if _, err := s.UpdateChain(ctx, chain[0].ID, revokeAll(time.Now().UTC().Truncate(time.Microsecond))); err != nil {
		t.Fatal(err)
	}
	for i, tok := range chain {
		got, _ := s.Get(ctx, tok.ID)
		if got.Version <= before[i] || got.RevokedAt.IsZero() {
			t.Fatalf("token %d: version %d -> %d, revoked %v", i, before[i], got.Version, got.RevokedAt)
		}
	}
}

// testUpdateChainError: a change that fails on the newest token leaves
// the older ones, which it had already changed, as they were.
func testUpdateChainError(t *testing.T, s store.Backend) {
	ctx := context.Background()
	chain := chainOf(t, s)
	boom := errors.New("boom")
	_, err := s.UpdateChain(ctx, chain[1].ID, func(tok *store.Token) (bool, error) {
		if tok.ID == chain[2].ID {
			return false, boom
		}
		tok.RevokeReason = "half"
		return true, nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the change's error", err)
	}
	for i, tok := range chain {
		if got, _ := s.Get(ctx, tok.ID); got.RevokeReason != "" {
			t.Fatalf("token %d was stored by a failed UpdateChain", i)
		}
	}
}

// testChainRevokeRacesRotate races revoking a chain (from its first id)
// against rotating its newest token, many times. The rotation refuses a
// revoked token, as lifecycle's does; whichever goes first, no token of
// the chain may end up unrevoked.
func testChainRevokeRacesRotate(t *testing.T, s store.Backend) {
	ctx := context.Background()
	const runs = 40
	rotated := 0
	for range runs {
		first, second := NewToken("alice"), NewToken("alice")
		mustCreate(t, s, first)
		if _, err := rotate(t, s, first, second); err != nil {
			t.Fatal(err)
		}
		third := NewToken("alice")
		third.RotatedFrom = second.ID
		var wg sync.WaitGroup
		var rotateErr, revokeErr error
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, rotateErr = s.Rotate(ctx, second.ID, third, func(o *store.Token) error {
				if !o.RevokedAt.IsZero() {
					return errRevoked
				}
				o.RotatedTo, o.GraceUntil = third.ID, time.Now().UTC().Add(time.Minute).Truncate(time.Microsecond)
				return nil
			})
		})
		wg.Go(func() {
			<-start
			_, revokeErr = s.UpdateChain(ctx, first.ID, revokeAll(time.Now().UTC().Truncate(time.Microsecond)))
		})
		close(start)
		wg.Wait()
		if revokeErr != nil {
			t.Fatal(revokeErr)
		}
		if rotateErr != nil && !errors.Is(rotateErr, errRevoked) {
			t.Fatal(rotateErr)
		}
		if rotateErr == nil {
			rotated++
		}
		for _, tok := range []*store.Token{first, second, third} {
			got, err := s.Get(ctx, tok.ID)
			if errors.Is(err, store.ErrNotFound) && tok == third && rotateErr != nil {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.RevokedAt.IsZero() {
				t.Fatalf("token %s of the chain is live after revoke and rotate raced (rotation err %v)", got.ID, rotateErr)
			}
		}
	}
	t.Logf("%d of %d rotations went first", rotated, runs)
}

var errRevoked = errors.New("revoked")
