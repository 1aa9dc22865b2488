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
	// usageResolution is how far behind the stored last-used time of a
	// busy token may be. An observation of a (token, scope) pair written
	// less than this long ago, from the same address, is not written
	// again: a token called a thousand times a second costs one record
	// write a minute, not one a second. A new address or a new scope is
	// written at the next flush, since both are what a reviewer looks for.
	usageResolution = time.Minute
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

	// written and writtenBefore hold what was stored per pair in the
	// current and the previous usageResolution window (two generations,
	// so memory is bounded without an LRU): record skips an observation
	// the store already has to within usageResolution.
	written, writtenBefore map[usageKey]usageMark
	// generationFrom is the observation time the current generation
	// started at (observation times, so a test's clock drives it too).
	generationFrom time.Time
}

type usageKey struct{ tokenID, scope string }

// usageMark is what the store was last given for a pair.
type usageMark struct {
	at time.Time
	ip string
}

func newUsageRecorder(s store.Store, onError func(error)) *usageRecorder {
	if onError == nil {
		onError = func(error) {}
	}
	return &usageRecorder{
		store:   s,
		onError: onError,
		pending: make(map[usageKey]store.Usage),
		full:    make(chan struct{}, 1),
		written: make(map[usageKey]usageMark),
	}
}

func (u *usageRecorder) record(x store.Usage) {
	k := usageKey{x.TokenID, x.Scope}
	u.mu.Lock()
	if u.stored(k, x) {
		u.mu.Unlock()
		return
	}
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

// stored tells whether the store already has x to within usageResolution:
// the same address, observed less than usageResolution after what was
// written. Callers hold u.mu.
func (u *usageRecorder) stored(k usageKey, x store.Usage) bool {
	m, ok := u.written[k]
	if !ok {
		m, ok = u.writtenBefore[k]
	}
	return ok && m.ip == x.IP && x.At.Before(m.at.Add(usageResolution))
}

// markWritten remembers a batch the store accepted. A new generation
// starts once the batch's observations are usageResolution past the
// current one's start, or when it holds usagePendingMax pairs; marks
// older than that no longer suppress anything anyway.
func (u *usageRecorder) markWritten(batch map[usageKey]store.Usage) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, x := range batch {
		if u.generationFrom.IsZero() {
			u.generationFrom = x.At
		}
		if !x.At.Before(u.generationFrom.Add(usageResolution)) || len(u.written) >= usagePendingMax {
			u.writtenBefore, u.written, u.generationFrom = u.written, make(map[usageKey]usageMark, len(u.written)), x.At
		}
		u.written[k] = usageMark{at: x.At, ip: x.IP}
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
		// Not marked: the next calls of these pairs are recorded again.
		u.onError(err)
		return
	}
	u.markWritten(taken)
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
