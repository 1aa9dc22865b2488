package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/internal/freshness"
	"github.com/tokengate/caddy-tokengate/internal/node"
)

// runtimes holds, per opened store, what outlives one config
// (node.Shared): the store handle, the change feed's follower and the
// configs using them. A reload provisions the new config before the old
// one stops, so for a moment two apps run on one store: they find each
// other here, and the store is opened once and closed when the last config
// lets go of it.
var runtimes = caddy.NewUsagePool()

// runtime is one entry of runtimes.
type runtime struct{ *node.Shared }

// Destruct stops the follower and closes the store, once no config uses
// them.
func (rt runtime) Destruct() error { return rt.Close() }

// maxStaleness is the configured bound, or the default.
func (a *App) maxStaleness() time.Duration {
	if a.MaxStaleness > 0 {
		return time.Duration(a.MaxStaleness)
	}
	return freshness.DefaultBound
}

// currentApp is the app the admin endpoint talks to: the one of the
// config Caddy is running (during a reload, the old one until the new
// one has started), or nil when that config has none.
func currentApp() *App {
	app, err := caddy.ActiveContext().AppIfConfigured("tokengate")
	if err != nil {
		return nil
	}
	a, _ := app.(*App)
	return a
}

var _ caddy.Destructor = runtime{}
