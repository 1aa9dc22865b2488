package caddymodule

import (
	"context"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/freshness"
	"github.com/tokengate/caddy-tokengate/store"
)

// followChanges feeds rt from the store's change feed until ctx is done.
// A shared store that has no feed (an older third-party backend that only
// notifies) can never confirm that the node is current, so the node stays
// stale and reads every token from the store; a store that neither
// notifies nor has a feed is one node's own, never behind.
func followChanges(ctx context.Context, s store.Backend, rt *runtime) {
	switch feed := s.(type) {
	case store.ChangeFeed:
		feed.Follow(ctx, rt)
	case store.Notifier:
		feed.Watch(ctx, rt.forgetByID, rt.forgetAll)
	default:
		rt.CaughtUp(store.Forever)
	}
}

// Changed implements store.Follower.
func (rt *runtime) Changed(tokenID string) { rt.forgetByID(tokenID) }

// Reset implements store.Follower.
func (rt *runtime) Reset() { rt.forgetAll() }

// CaughtUp implements store.Follower.
func (rt *runtime) CaughtUp(asOf time.Time) { rt.freshness.Confirm(asOf) }

// maxStaleness is the configured bound, or the default.
func (a *App) maxStaleness() time.Duration {
	if a.MaxStaleness > 0 {
		return time.Duration(a.MaxStaleness)
	}
	return freshness.DefaultBound
}

// fresh reports whether this node may answer from its caches: its store's
// feed has confirmed within max_staleness that it has seen every change.
func (a *App) fresh() bool { return a.rt.freshness.Lag() <= a.maxStaleness() }

var _ store.Follower = (*runtime)(nil)
