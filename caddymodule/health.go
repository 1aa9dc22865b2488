package caddymodule

import (
	"context"
	"net/http"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/health"
)

// serveProbe answers /healthz and /readyz (internal/health) on the
// management site, and reports whether r was one of them.
func (h *AdminHandler) serveProbe(w http.ResponseWriter, r *http.Request) bool {
	return health.Serve(w, r, h.app.notReady)
}

// notReady names the parts that keep the node from deciding calls.
func (a *App) notReady(ctx context.Context) []string {
	return health.Checks{
		StoreUp:       a.storeUp,
		PolicyLoaded:  func() bool { return a.engine != nil && a.engine.Revision() != "" },
		AuditWritable: func() bool { return a.audit.Health().Healthy() },
		ChangeFeedLive: func() bool {
			live, _ := a.changeFeed()
			return live
		},
	}.NotReady(ctx)
}

// storeUp reports whether the store answers, reusing an answer for a
// second.
func (a *App) storeUp(ctx context.Context) bool {
	return a.storeProbe.Up(ctx, a.store, a.now())
}

// changeFeed reports whether this node is current with the token changes
// made on other nodes (within max_staleness), and how far behind it may
// be. A store no other node writes (bolt) is never behind.
func (a *App) changeFeed() (live bool, lag time.Duration) {
	return a.fresh(), a.rt.freshness.Lag()
}
