package caddymodule

import (
	"time"

	tgmetrics "github.com/tokengate/caddy-tokengate/internal/metrics"
)

// metrics are tokengate's collectors (internal/metrics), in Caddy's
// metrics registry: served by the admin endpoint at /metrics, and by a
// `metrics` handler if the config has one. Built once per process, as
// Caddy's reverse proxy builds its own, and registered into every
// config's registry (App.Provision), so counters survive config reloads.
// The control gauges read the parts of the config Caddy is running.
var metrics = tgmetrics.New(func() tgmetrics.Running {
	if a := currentApp(); a != nil && a.parts != nil {
		return a.parts
	}
	return nil
})

// minCensusInterval keeps a config from counting a large store in a loop.
const minCensusInterval = tgmetrics.MinCensusInterval

// census is what this config counts for the token gauges, and how often.
func (a *App) census() tgmetrics.Census {
	return tgmetrics.Census{Store: a.store, Now: a.now, Interval: time.Duration(a.CensusInterval), Logger: a.logger}
}
