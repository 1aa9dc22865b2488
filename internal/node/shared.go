package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/freshness"
	"github.com/tokengate/caddy-tokengate/store"
)

// Shared is what outlives one config of a node, per opened store: the
// store handle, the follower of its change feed, how current this node is
// with the token changes of other nodes, the pending break-glass recovery
// and the parts of the configs using them. A reload provisions the new
// config before the old one stops, so for a moment two configs run on one
// store: both are attached here (a token changed through either is dropped
// from the caches of both), and the store is opened once (bbolt locks its
// file; opening it a second time would block) and closed when the last
// config lets go of it (the adapter counts the configs).
type Shared struct {
	store  store.Backend
	events CacheEvents

	// BreakGlass holds this node's pending recovery of lost bootstrap
	// secrets, across config reloads.
	BreakGlass breakglass.Desk

	mu       sync.Mutex
	attached []*Parts // assembled and not detached, oldest first

	// freshness is how far behind the token changes of other nodes this
	// node may be.
	freshness *freshness.Tracker
	// clock is the newest attached config's clock, read without the
	// lock: the freshness tracker asks it on every call.
	clock atomic.Pointer[func() time.Time]

	stopFollowing context.CancelFunc
	following     sync.WaitGroup
}

// CacheEvents hears of tokens dropped from the caches, for the metrics.
type CacheEvents interface {
	// Invalidated: t was dropped at now; source is local (changed through
	// this node) or notify (changed on another node).
	Invalidated(source string, t *store.Token, now time.Time)
	// Reset: every cached token and decision was dropped.
	Reset()
}

// NewShared takes over s and follows its change feed; events hears of
// what the caches drop.
func NewShared(s store.Backend, events CacheEvents) *Shared {
	sh := &Shared{store: s, events: events}
	sh.freshness = freshness.New(freshness.DefaultBound, sh.clockNow)
	if _, shared := s.(store.Notifier); !shared {
		// Current from the first call on, not from when the feed's
		// goroutine first runs.
		sh.CaughtUp(store.Forever)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh.stopFollowing = cancel
	sh.following.Go(func() { sh.follow(ctx) })
	return sh
}

// follow feeds sh from the store's change feed until ctx is done. A
// shared store that has no feed (an older third-party backend that only
// notifies) can never confirm that the node is current, so the node stays
// stale and reads every token from the store; a store that neither
// notifies nor has a feed is one node's own, never behind.
func (sh *Shared) follow(ctx context.Context) {
	switch feed := sh.store.(type) {
	case store.ChangeFeed:
		feed.Follow(ctx, sh)
	case store.Notifier:
		feed.Watch(ctx, sh.Changed, sh.Reset)
	default:
		sh.CaughtUp(store.Forever)
	}
}

// Store is the opened store.
func (sh *Shared) Store() store.Backend { return sh.store }

// Attach adds p to the parts whose caches follow token changes; its clock
// becomes the one the freshness tracker reads.
func (sh *Shared) Attach(p *Parts) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.attached = append(sh.attached, p)
	sh.keepNewestClock()
}

// Detach removes p; its gate is about to be closed.
func (sh *Shared) Detach(p *Parts) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i, x := range sh.attached {
		if x == p {
			sh.attached = append(sh.attached[:i], sh.attached[i+1:]...)
			break
		}
	}
	sh.keepNewestClock()
}

// keepNewestClock makes the newest attached config's clock the one
// clockNow reads (sh.mu held), or none: the system's.
func (sh *Shared) keepNewestClock() {
	if n := len(sh.attached); n > 0 {
		sh.clock.Store(&sh.attached[n-1].opts.Now)
	} else {
		sh.clock.Store(nil)
	}
}

// Attached are the parts attached now, oldest first.
func (sh *Shared) Attached() []*Parts {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return append([]*Parts(nil), sh.attached...)
}

// Forget drops a token changed on this node from every attached cache.
func (sh *Shared) Forget(t *store.Token) {
	sh.mu.Lock()
	for _, p := range sh.attached {
		p.Gate.Forget(t)
	}
	sh.mu.Unlock()
	sh.events.Invalidated("local", t, sh.clockNow())
}

// Changed drops a token another node changed (store.Follower). It needs
// no store: a notification handled just as the store goes away must not
// cost every other cached answer. The store is read afterwards only to
// time the invalidation of a revocation for the metrics, whether or not a
// cache held the token: the lag is the feed's, not the caches'.
func (sh *Shared) Changed(id string) {
	sh.mu.Lock()
	for _, p := range sh.attached {
		p.Gate.ForgetID(id)
	}
	sh.mu.Unlock()
	dropped := sh.clockNow()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t, err := sh.store.Get(ctx, id)
	if err != nil {
		t = &store.Token{ID: id}
	}
	sh.events.Invalidated("notify", t, dropped)
}

// Reset empties every attached cache when notifications may have been
// missed (store.Follower).
func (sh *Shared) Reset() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, p := range sh.attached {
		p.Gate.ForgetAll()
	}
	// The newest config logs: an older one's logger may belong to a
	// config on its way out.
	if n := len(sh.attached); n > 0 {
		sh.attached[n-1].opts.Logger.Warn("token change notifications may have been missed; dropping all cached tokens and decisions")
	}
	sh.events.Reset()
}

// CaughtUp records that every change committed before asOf has been
// applied (store.Follower).
func (sh *Shared) CaughtUp(asOf time.Time) { sh.freshness.Confirm(asOf) }

// Lag is how far behind the token changes of other nodes this node may
// be. A store no other node writes (bolt) is never behind.
func (sh *Shared) Lag() time.Duration { return sh.freshness.Lag() }

// Fresh reports whether this node may answer from its caches: the store's
// feed has confirmed within bound (max_staleness) that it has seen every
// change.
func (sh *Shared) Fresh(bound time.Duration) bool { return sh.Lag() <= bound }

// clockNow is the clock of the newest attached config (the configs of one
// process share one clock), or the system's when none is attached. It
// takes no lock: the freshness check of every call reads it.
func (sh *Shared) clockNow() time.Time {
	if now := sh.clock.Load(); now != nil && *now != nil {
		return (*now)()
	}
	return time.Now()
}

// Close stops following the change feed and closes the store, once no
// config uses them.
func (sh *Shared) Close() error {
	sh.stopFollowing()
	sh.following.Wait()
	return sh.store.Close()
}

var _ store.Follower = (*Shared)(nil)
