package gateway

import (
	"context"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store"
)

const (
	usageFlushEvery = time.Second
	usageBatchMax   = 512
	usageQueueLen   = 8192
)

// usageRecorder writes last-used times and exercised scopes of unlimited
// tokens in batches, off the request path, so a cached call does no I/O.
// When the queue is full an observation is dropped rather than slowing the
// call: "last used" is a hygiene signal, not an enforcement input.
type usageRecorder struct {
	store   store.Store
	queue   chan store.Usage
	onError func(error)
}

func newUsageRecorder(s store.Store, onError func(error)) *usageRecorder {
	if onError == nil {
		onError = func(error) {}
	}
	return &usageRecorder{store: s, queue: make(chan store.Usage, usageQueueLen), onError: onError}
}

func (u *usageRecorder) record(x store.Usage) {
	select {
	case u.queue <- x:
	default:
	}
}

func (u *usageRecorder) run(ctx context.Context) {
	ticker := time.NewTicker(usageFlushEvery)
	defer ticker.Stop()
	// Keep only the newest observation per token and scope in a batch.
	pending := make(map[[2]string]store.Usage)
	flush := func() {
		if len(pending) == 0 {
			return
		}
		batch := make([]store.Usage, 0, len(pending))
		for _, x := range pending {
			batch = append(batch, x)
		}
		clear(pending)
		// The caller's context may be done already; the final flush still
		// gets a short time of its own.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := u.store.RecordUsage(fctx, batch); err != nil {
			u.onError(err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case x := <-u.queue:
					keep(pending, x)
				default:
					flush()
					return
				}
			}
		case x := <-u.queue:
			keep(pending, x)
			if len(pending) >= usageBatchMax {
				flush()
			}
		case <-ticker.C:
			flush()
		}
	}
}

func keep(pending map[[2]string]store.Usage, x store.Usage) {
	k := [2]string{x.TokenID, x.Scope}
	if prev, ok := pending[k]; !ok || x.At.After(prev.At) {
		pending[k] = x
	}
}
