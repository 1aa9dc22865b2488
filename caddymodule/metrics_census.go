package caddymodule

import (
	"cmp"
	"context"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/report"
	"github.com/tokengate/caddy-tokengate/store"
)

// Gauges, taken from the store (for hygiene alerts: tokens about to
// expire, requests nobody decides), decisions by service, and the build:
//
//	tokengate_tokens{state}                          stored tokens by state: active, pending, rotating, rotated, expired, revoked, exhausted
//	tokengate_tokens_expiring_soon                   active or pending tokens expiring within 7 days (the hygiene report's window)
//	tokengate_requests_pending                       management requests waiting for approval
//	tokengate_census_last_success_timestamp_seconds  when the counts above were last taken
//	tokengate_census_errors_total                    counts that failed (the gauges keep their previous values)
//	tokengate_service_decisions_total{service,result} gateway calls by route service and result
//	tokengate_build_info{version}                    1, labelled with tokengate's module version
//
// The counts are taken when the app starts and then every census_interval,
// off the request path: a GROUP BY query in PostgreSQL, one read
// transaction in bolt. A scrape only reads the last values, so scraping
// often costs the store nothing.

// DefaultCensusInterval is how often the store is counted when the config
// does not say (census_interval).
const DefaultCensusInterval = 30 * time.Second

// minCensusInterval keeps a config from counting a large store in a loop.
const minCensusInterval = time.Second

// censusTimeout bounds one count, so a hung store cannot pile them up.
const censusTimeout = 20 * time.Second

// maxServiceLabels bounds the service label: the first services the
// process sees get their own value, later ones count as "other". Services
// come from the config, not from requests, but a config generated with
// thousands of routes, or many reloads with changing names, must not grow
// the scrape without bound.
const maxServiceLabels = 100

// serviceOther labels the services past maxServiceLabels.
const serviceOther = "other"

// modulePath is this Go module, whose version build info reports.
const modulePath = "github.com/tokengate/caddy-tokengate"

type censusMetrics struct {
	tokens      *prometheus.GaugeVec
	expiring    prometheus.Gauge
	pending     prometheus.Gauge
	lastSuccess prometheus.Gauge
	errors      prometheus.Counter
	services    *prometheus.CounterVec
	buildInfo   *prometheus.GaugeVec
	// serviceCalls maps a service name to its *serviceCounters; a
	// sync.Map, as its keys are written once and read on every call.
	serviceCalls sync.Map
	serviceMu    sync.Mutex // creating entries
	nServices    int
	// failing is true while counts fail, so the log says so once per
	// outage, not every interval.
	failing bool
	countMu sync.Mutex
}

// serviceCounters are one service's resolved children, so a call does one
// map lookup and no label hashing.
type serviceCounters struct {
	allow, deny, fail prometheus.Counter
}

func newCensusMetrics() *censusMetrics {
	const ns = "tokengate"
	m := &censusMetrics{
		tokens: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "tokens",
			Help: "Stored tokens by state (active, pending, rotating, rotated, expired, revoked, exhausted), as last counted.",
		}, []string{"state"}),
		expiring: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "tokens_expiring_soon",
			Help: "Active or pending tokens whose expiry is within 7 days, as last counted.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "requests_pending",
			Help: "Management requests waiting for a decision, as last counted.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "census_last_success_timestamp_seconds",
			Help: "Unix time at which the token and request gauges were last counted from the store.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "census_errors_total",
			Help: "Counts of the store that failed; the gauges keep their previous values.",
		}),
		services: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "service_decisions_total",
			Help: "Gateway calls by route service (other past the first 100 services) and result (allow, deny, error).",
		}, []string{"service", "result"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "build_info",
			Help: "Always 1; version is the tokengate module's version in this binary.",
		}, []string{"version"}),
	}
	for _, s := range store.States {
		m.tokens.WithLabelValues(s)
	}
	m.buildInfo.WithLabelValues(moduleVersion()).Set(1)
	return m
}

func (m *censusMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.tokens, m.expiring, m.pending, m.lastSuccess, m.errors, m.services, m.buildInfo}
}

// forService returns the counters of a route's service, creating them
// for a new one while there is room.
func (m *censusMetrics) forService(service string) *serviceCounters {
	if c, ok := m.serviceCalls.Load(service); ok {
		return c.(*serviceCounters)
	}
	m.serviceMu.Lock()
	defer m.serviceMu.Unlock()
	if c, ok := m.serviceCalls.Load(service); ok {
		return c.(*serviceCounters)
	}
	label := service
	if m.nServices >= maxServiceLabels {
		label = serviceOther
	} else {
		m.nServices++
	}
	c := &serviceCounters{
		allow: m.services.WithLabelValues(label, gateway.Allow),
		deny:  m.services.WithLabelValues(label, gateway.Deny),
		fail:  m.services.WithLabelValues(label, gateway.Error),
	}
	m.serviceCalls.Store(service, c)
	return c
}

func (c *serviceCounters) count(outcome string) {
	switch outcome {
	case gateway.Allow:
		c.allow.Inc()
	case gateway.Deny:
		c.deny.Inc()
	default:
		c.fail.Inc()
	}
}

// censusInterval is how often this config counts its store.
func (a *App) censusInterval() time.Duration {
	if a.CensusInterval > 0 {
		return time.Duration(a.CensusInterval)
	}
	return DefaultCensusInterval
}

// runCensus counts b at once and then every interval until ctx is done.
func (m *censusMetrics) runCensus(ctx context.Context, b store.Backend, now func() time.Time, log *zap.Logger, interval time.Duration) {
	for {
		m.count(ctx, b, now, log)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (m *censusMetrics) count(ctx context.Context, b store.Backend, now func() time.Time, log *zap.Logger) {
	// During a reload two configs count the same store; one count at a
	// time is enough.
	m.countMu.Lock()
	defer m.countMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, censusTimeout)
	defer cancel()
	c, err := store.Count(ctx, b, now(), report.ExpiringWithin)
	if err != nil {
		if ctx.Err() == context.Canceled {
			return // shutting down
		}
		m.errors.Inc()
		if !m.failing {
			m.failing = true
			log.Warn("counting tokens for the metrics failed; the token gauges keep their last values", zap.Error(err))
		}
		return
	}
	if m.failing {
		m.failing = false
		log.Info("counting tokens for the metrics works again")
	}
	for state, n := range c.Tokens {
		m.tokens.WithLabelValues(state).Set(float64(n))
	}
	m.expiring.Set(float64(c.ExpiringSoon))
	m.pending.Set(float64(c.PendingRequests))
	m.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
}

// moduleVersion is tokengate's version as the Go toolchain recorded it:
// the version xcaddy's --with asked for (a replaced module keeps the
// version it was required at), or, for `go build ./cmd/caddy` in a git
// checkout, the tag or pseudo-version Go derives from the commit. "(devel)"
// when neither is known (a build with -buildvcs=false).
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return versionIn(bi)
}

func versionIn(bi *debug.BuildInfo) string {
	if bi.Main.Path == modulePath {
		return cmp.Or(bi.Main.Version, "(devel)")
	}
	for _, dep := range bi.Deps {
		if dep.Path == modulePath {
			// A folder replacement (xcaddy's module@v0.2.0=./src) is
			// recorded as "(devel)": the version asked for is the one.
			if dep.Replace != nil && dep.Replace.Version != "" && dep.Replace.Version != "(devel)" {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "(devel)"
}
