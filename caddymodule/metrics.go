package caddymodule

import (
	"context"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/identity"
	tgmetrics "github.com/tokengate/caddy-tokengate/internal/metrics"
)

// metrics are tokengate's collectors (internal/metrics), in Caddy's
// metrics registry: served by the admin endpoint at /metrics, and by a
// `metrics` handler if the config has one. Built once per process, as
// Caddy's reverse proxy builds its own, and registered into every
// config's registry (App.Provision), so counters survive config reloads.
// The control gauges read the config Caddy is running.
var metrics = tgmetrics.New(func() tgmetrics.Running {
	if a := currentApp(); a != nil {
		return runningApp{a}
	}
	return nil
})

// minCensusInterval keeps a config from counting a large store in a loop.
const minCensusInterval = tgmetrics.MinCensusInterval

// census is what this config counts for the token gauges, and how often.
func (a *App) census() tgmetrics.Census {
	return tgmetrics.Census{Store: a.store, Now: a.now, Interval: time.Duration(a.CensusInterval), Logger: a.logger}
}

// runningApp shows an app's parts to the control gauges.
type runningApp struct{ a *App }

func (r runningApp) AuditWritable() bool                     { return r.a.audit.Health().Healthy() }
func (r runningApp) StoreUp(ctx context.Context) bool        { return r.a.storeUp(ctx) }
func (r runningApp) IdentityProviders() []*identity.Verifier { return r.a.issuers() }

func (r runningApp) ChangeLag() time.Duration {
	_, lag := r.a.changeFeed()
	return lag
}

// issuers are the app's identity providers: the oidc issuer people sign
// in with and the workload issuers.
func (a *App) issuers() []*identity.Verifier {
	var vs []*identity.Verifier
	if a.people != nil {
		vs = append(vs, a.people)
	}
	if a.workloads != nil {
		vs = append(vs, a.workloads.Verifiers()...)
	}
	return vs
}
