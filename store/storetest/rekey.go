package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// testRekey: a re-keyed token is found under its new hash only, with its
// other fields unchanged and its Version grown; a missing old hash and a
// new hash another token holds change nothing.
func testRekey(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("alice")
	mustCreate(t, s, tok)
	other := NewToken("bob")
	mustCreate(t, s, other)
	oldHash := bytes.Clone(tok.Hash)
	sum := sha256.Sum256([]byte(token.NewSecret()))
	newHash := sum[:]

	if _, err := s.Rekey(ctx, oldHash, other.Hash); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rekey onto another token's hash: %v, want ErrConflict", err)
	}
	if got, err := s.GetByHash(ctx, oldHash); err != nil || got.ID != tok.ID || got.Version != tok.Version {
		t.Fatalf("after a refused rekey, old hash finds %+v, %v; want %s unchanged", got, err, tok.ID)
	}
	if got, err := s.GetByHash(ctx, other.Hash); err != nil || got.ID != other.ID {
		t.Fatalf("after a refused rekey, the other token's hash finds %+v, %v", got, err)
	}

	got, err := s.Rekey(ctx, oldHash, newHash)
	if err != nil {
		t.Fatalf("rekey: %v", err)
	}
	if got.ID != tok.ID || !bytes.Equal(got.Hash, newHash) || got.Version != tok.Version+1 || got.Owner != tok.Owner {
		t.Fatalf("rekey returned id %s hash %x version %d owner %s; want %s %x %d %s",
			got.ID, got.Hash, got.Version, got.Owner, tok.ID, newHash, tok.Version+1, tok.Owner)
	}
	byNew, err := s.GetByHash(ctx, newHash)
	if err != nil || byNew.ID != tok.ID || !bytes.Equal(byNew.Hash, newHash) {
		t.Fatalf("new hash finds %+v, %v; want %s", byNew, err, tok.ID)
	}
	if _, err := s.GetByHash(ctx, oldHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old hash after rekey: %v, want ErrNotFound", err)
	}
	if byID, err := s.Get(ctx, tok.ID); err != nil || !bytes.Equal(byID.Hash, newHash) {
		t.Fatalf("Get after rekey: %+v, %v; want the new hash", byID, err)
	}
	if _, err := s.Rekey(ctx, oldHash, newHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rekey of a hash no token has: %v, want ErrNotFound", err)
	}
	// The old hash is free again: a new token may take it.
	reuse := NewToken("carol")
	reuse.Hash = oldHash
	mustCreate(t, s, reuse)
}

// testRekeyIsAtomic: nodes that find one secret under the previous pepper
// at once race to re-key it; exactly one wins and the others see
// ErrNotFound, never a token lost or duplicated.
func testRekeyIsAtomic(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("alice")
	mustCreate(t, s, tok)
	sum := sha256.Sum256([]byte(token.NewSecret()))
	newHash := sum[:]
	won := race(t, 8, store.ErrNotFound, func() error {
		_, err := s.Rekey(ctx, tok.Hash, newHash)
		return err
	})
	if won != 1 {
		t.Fatalf("%d rekeys won, want 1", won)
	}
	got, err := s.GetByHash(ctx, newHash)
	if err != nil || got.ID != tok.ID || got.Version != tok.Version+1 {
		t.Fatalf("after the race the new hash finds %+v, %v; want %s at version %d", got, err, tok.ID, tok.Version+1)
	}
}
