package bolt

import (
	"bytes"
	"context"
	"slices"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokengate/caddy-tokengate/store"
)

// CreateMany adds many tokens in one transaction: one fsync instead of one
// per token, for imports and for building large stores to measure lookups
// against. Each bucket is written in key order, which keeps bbolt from
// splitting pages all over the file. If any id or hash exists already, or
// appears twice in ts, nothing is stored and the error is
// store.ErrConflict.
func (s *Store) CreateMany(_ context.Context, ts []*store.Token) error {
	byID := slices.Clone(ts)
	slices.SortFunc(byID, func(a, b *store.Token) int { return strings.Compare(a.ID, b.ID) })
	byHash := slices.Clone(ts)
	slices.SortFunc(byHash, func(a, b *store.Token) int { return bytes.Compare(a.Hash, b.Hash) })
	return s.update(func(tx *bbolt.Tx) error {
		tokens, hashes := tx.Bucket(tokensBucket), tx.Bucket(hashesBucket)
		for _, t := range byID {
			if tokens.Get([]byte(t.ID)) != nil {
				return store.ErrConflict
			}
			if err := put(tokens, t); err != nil {
				return err
			}
		}
		for _, t := range byHash {
			if hashes.Get(t.Hash) != nil {
				return store.ErrConflict
			}
			if err := hashes.Put(t.Hash, []byte(t.ID)); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateRequestsMany adds many requests in one transaction, as CreateMany
// does tokens: for imports and for building large inboxes to measure.
// ErrConflict, storing nothing, when an id exists or repeats.
func (s *Store) CreateRequestsMany(_ context.Context, rs []*store.Request) error {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b *store.Request) int { return strings.Compare(a.ID, b.ID) })
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(requestsBucket)
		for _, r := range sorted {
			if b.Get([]byte(r.ID)) != nil {
				return store.ErrConflict
			}
			if err := putJSON(b, r.ID, r); err != nil {
				return err
			}
		}
		return nil
	})
}
