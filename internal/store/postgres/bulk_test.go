package postgres

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/store/storetest"
)

// CreateMany goes through COPY, which encodes values differently from
// Create's INSERT: a record stored either way must read back the same.
func TestCreateManyStoresWhatCreateStores(t *testing.T) {
	t.Parallel()
	s := open(t, testDSN(t))
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Microsecond)

	full := storetest.NewToken("alice")
	full.MaxUses, full.Uses, full.Version = 5, 2, 7
	full.ApprovedBy, full.RotatedFrom, full.RotatedTo = "carol", "tok_old", "tok_new"
	full.HeldBy = "dave"
	full.GraceUntil, full.RevokedAt, full.LastUsedAt = at.Add(time.Minute), at, at.Add(-time.Second)
	full.RevokedBy, full.RevokeReason, full.LastUsedIP = "security", "leaked", "10.1.2.3"
	full.UsedScopes = []string{"billing:read"}
	sparse := storetest.NewToken("bob")
	sparse.Scopes, sparse.Services, sparse.CIDRs = nil, nil, nil
	sparse.NotBefore, sparse.ExpiresAt, sparse.CreatedAt = time.Time{}, time.Time{}, time.Time{}

	for _, want := range []*store.Token{full, sparse} {
		bulk := want.Clone()
		bulk.ID = token.NewID()
		bulk.Hash = storetest.NewToken("x").Hash
		if err := s.Create(ctx, want); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateMany(ctx, []*store.Token{bulk}); err != nil {
			t.Fatal(err)
		}
		viaCreate, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		viaMany, err := s.GetByHash(ctx, bulk.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if viaMany.ID != bulk.ID {
			t.Fatalf("GetByHash returned %s, want %s", viaMany.ID, bulk.ID)
		}
		viaMany.ID, viaMany.Hash = viaCreate.ID, viaCreate.Hash
		if !reflect.DeepEqual(viaMany, viaCreate) {
			t.Errorf("%s: CreateMany stored\n%+v\nCreate stored\n%+v", want.Owner, viaMany, viaCreate)
		}
	}
}

func TestCreateManyAllOrNothing(t *testing.T) {
	t.Parallel()
	s := open(t, testDSN(t))
	ctx := context.Background()

	if err := s.CreateMany(ctx, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	var batch []*store.Token
	for range 100 {
		batch = append(batch, storetest.NewToken("alice"))
	}
	if err := s.CreateMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, tok := range batch {
		if _, err := s.GetByHash(ctx, tok.Hash); err != nil {
			t.Fatalf("token %s: %v", tok.ID, err)
		}
	}

	existing := batch[len(batch)/2]
	for name, clash := range map[string]func(fresh []*store.Token){
		"existing id":      func(fresh []*store.Token) { fresh[5].ID = existing.ID },
		"existing hash":    func(fresh []*store.Token) { fresh[5].Hash = existing.Hash },
		"id twice in ts":   func(fresh []*store.Token) { fresh[5].ID = fresh[2].ID },
		"hash twice in ts": func(fresh []*store.Token) { fresh[5].Hash = fresh[2].Hash },
	} {
		fresh := make([]*store.Token, 10)
		for i := range fresh {
			fresh[i] = storetest.NewToken("bob")
		}
		clash(fresh)
		if err := s.CreateMany(ctx, fresh); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: err = %v, want ErrConflict", name, err)
		}
		for _, tok := range fresh[:5] { // none of these clash, and none may be stored
			if _, err := s.Get(ctx, tok.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: token %s of the refused batch was stored (err %v)", name, tok.ID, err)
			}
		}
	}
	bob, err := s.List(ctx, store.Filter{Owner: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bob) != 0 {
		t.Errorf("%d tokens of refused batches were stored", len(bob))
	}
}
