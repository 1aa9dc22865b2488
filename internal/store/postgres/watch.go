package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// Reconnect delays after the listening connection fails: doubling from
// minBackoff up to maxBackoff, so a database restart is picked up quickly
// but a long outage does not become a connection storm.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Watch listens for token changes on a connection of its own and calls
// changed with the id of every token that Update, Rotate or ConsumeUse
// changed on any node, this one included. It calls reset each time it is
// listening again, since anything that changed while it was not was
// missed. It does not call reset when the connection fails: while the
// database is unreachable no token can change through it, and the node's
// cached decisions keep serving until they expire (which is the bound
// the README states). It reconnects with backoff and returns when ctx is
// done.
func (s *Store) Watch(ctx context.Context, changed func(tokenID string), reset func()) {
	delay := minBackoff
	for {
		listened := s.listen(ctx, changed, reset)
		if ctx.Err() != nil {
			return
		}
		if listened {
			delay = minBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxBackoff)
	}
}

// listen holds one connection in LISTEN until it fails or ctx is done,
// and reports whether it got as far as listening.
func (s *Store) listen(ctx context.Context, changed func(string), reset func()) bool {
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		return false
	}
	// The connection leaves the pool for good: LISTEN is session state,
	// and a pool would hand the connection to other callers.
	conn := pooled.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return false
	}
	s.feed.set(true)
	defer s.feed.set(false)
	reset()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true
		}
		changed(n.Payload)
	}
}

// FeedLive implements store.FeedReporter: live while the connection of
// Watch is in LISTEN.
func (s *Store) FeedLive() (live bool, since time.Time) { return s.feed.get() }

// feedState is whether the listening connection is up, and since when.
type feedState struct {
	mu    sync.Mutex
	live  bool
	since time.Time
}

func (f *feedState) set(live bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live, f.since = live, time.Now()
}

func (f *feedState) get() (bool, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live, f.since
}

var _ store.FeedReporter = (*Store)(nil)
