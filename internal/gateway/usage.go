package gateway

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

const (
	usageFlushEvery = time.Second
	// usageBatchMax pending observations trigger a flush before the tick.
	usageBatchMax = 512
	// usagePendingMax bounds memory between flushes: with this many
	// distinct (token, scope) pairs waiting, observations of new pairs are
	// dropped until the next flush.
	usagePendingMax = 65536
)

// usageRecorder writes last-used times and exercised scopes of unlimited
// tokens in batches, off the request path, so a cached call does no I/O.
//
// Calls only update a map under a mutex: a channel send per call (the
// first version) woke the flushing goroutine on every allowed call, which
// profiles showed costing more CPU than the rest of a cached call. The map
// keeps the newest observation per token and scope, which is all the store
// keeps anyway. When it is full a new pair is dropped rather than slowing
// the call: "last used" is a hygiene signal, not an enforcement input.
type usageRecorder struct {
	store   store.Store
	onError func(error)

	mu      sync.Mutex
	pending map[usageKey]store.Usage
	// full is signalled (without blocking) when pending reaches
	// usageBatchMax, so a burst is written before the tick.
	full chan struct{}
}

type usageKey struct{ tokenID, scope string }

func newUsageRecorder(s store.Store, onError func(error)) *usageRecorder {
	if onError == nil {
		onError = func(error) {}
	}
	return &usageRecorder{
		store:   s,
		onError: onError,
		pending: make(map[usageKey]store.Usage),
		full:    make(chan struct{}, 1),
	}
}

func (u *usageRecorder) record(x store.Usage) {
	k := usageKey{x.TokenID, x.Scope}
	u.mu.Lock()
	prev, seen := u.pending[k]
	switch {
	case !seen && len(u.pending) >= usagePendingMax:
		// Dropped: see the type's comment.
	case !seen || x.At.After(prev.At):
		u.pending[k] = x
	}
	n := len(u.pending)
	u.mu.Unlock()
	if n == usageBatchMax {
		select {
		case u.full <- struct{}{}:
		default:
		}
	}
}

// take swaps out the pending observations.
func (u *usageRecorder) take() map[usageKey]store.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	batch := u.pending
	u.pending = make(map[usageKey]store.Usage, len(batch))
	return batch
}

func (u *usageRecorder) flush(ctx context.Context) {
	taken := u.take()
	if len(taken) == 0 {
		return
	}
	// The caller's context may be done already; the final flush still
	// gets a short time of its own.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := u.store.RecordUsage(fctx, slices.Collect(maps.Values(taken))); err != nil {
		u.onError(err)
	}
}

func (u *usageRecorder) run(ctx context.Context) {
	ticker := time.NewTicker(usageFlushEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			u.flush(ctx)
			return
		case <-u.full:
			u.flush(ctx)
		case <-ticker.C:
			u.flush(ctx)
		}
	}
}
