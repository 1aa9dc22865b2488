package gateway

import (
	"context"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// observedStore times the store calls the gateway makes, for
// Options.ObserveStore. Every other method passes straight through.
type observedStore struct {
	store.Store
	observe func(op string, d time.Duration)
}

func (s observedStore) GetByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	start := time.Now()
	t, err := s.Store.GetByHash(ctx, hash)
	s.observe("get_by_hash", time.Since(start))
	return t, err
}

func (s observedStore) ConsumeUse(ctx context.Context, id string, u store.Usage) (*store.Token, error) {
	start := time.Now()
	t, err := s.Store.ConsumeUse(ctx, id, u)
	s.observe("consume_use", time.Since(start))
	return t, err
}

func (s observedStore) RecordUsage(ctx context.Context, batch []store.Usage) error {
	start := time.Now()
	err := s.Store.RecordUsage(ctx, batch)
	s.observe("record_usage", time.Since(start))
	return err
}

var _ store.Store = observedStore{}
