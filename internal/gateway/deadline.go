package gateway

import (
	"context"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// boundedStore gives each store call of the request path a deadline
// (Options.StoreTimeout), so that a database behind a silent network
// (nothing refused, nothing answered) costs a call a 503 store_unavailable
// after the deadline instead of the client's patience. Every other method
// passes straight through.
type boundedStore struct {
	store.Store
	timeout time.Duration
}

func (s boundedStore) GetByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.Store.GetByHash(ctx, hash)
}

func (s boundedStore) Rekey(ctx context.Context, oldHash, newHash []byte) (*store.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.Store.Rekey(ctx, oldHash, newHash)
}

func (s boundedStore) ConsumeUse(ctx context.Context, id string, u store.Usage) (*store.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.Store.ConsumeUse(ctx, id, u)
}

var _ store.Store = boundedStore{}
