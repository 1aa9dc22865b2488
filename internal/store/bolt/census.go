package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokengate/caddy-tokengate/store"
)

// censusFields are the fields of a token record its state depends on.
// Decoding only these skips building the slices and strings a census
// never reads.
type censusFields struct {
	NotBefore  time.Time `json:"not_before"`
	ExpiresAt  time.Time `json:"expires_at"`
	MaxUses    int64     `json:"max_uses"`
	Uses       int64     `json:"uses"`
	RotatedTo  string    `json:"rotated_to"`
	GraceUntil time.Time `json:"grace_until"`
	RevokedAt  time.Time `json:"revoked_at"`
	ExposedAt  time.Time `json:"exposed_at"`
}

// Count counts tokens by state and pending requests in one read
// transaction, which never blocks the writers.
func (s *Store) Count(_ context.Context, now time.Time, expiringWithin time.Duration) (*store.Census, error) {
	c := store.NewCensus()
	err := s.view(func(tx *bbolt.Tx) error {
		err := tx.Bucket(tokensBucket).ForEach(func(_, v []byte) error {
			var f censusFields
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decoding token record: %v", err)
			}
			c.Add(&store.Token{NotBefore: f.NotBefore, ExpiresAt: f.ExpiresAt, MaxUses: f.MaxUses, Uses: f.Uses,
				RotatedTo: f.RotatedTo, GraceUntil: f.GraceUntil, RevokedAt: f.RevokedAt, ExposedAt: f.ExposedAt}, now, expiringWithin)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(requestsBucket).ForEach(func(_, v []byte) error {
			var r struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding request record: %v", err)
			}
			if r.Status == store.RequestPending {
				c.PendingRequests++
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

var _ store.Counter = (*Store)(nil)
