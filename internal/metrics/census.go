package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/report"
	"github.com/tokengate/caddy-tokengate/internal/version"
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

// MinCensusInterval keeps a config from counting a large store in a loop.
const MinCensusInterval = time.Second

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
	m.buildInfo.WithLabelValues(version.Module()).Set(1)
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

// Census says what to count and how often.
type Census struct {
	Store store.Backend
	// Now is the clock expiry is judged by (tokens expiring within 7
	// days of it).
	Now func() time.Time
	// Interval between counts; DefaultCensusInterval when 0.
	Interval time.Duration
	// Logger hears when counting starts to fail and when it works again.
	Logger *zap.Logger
}

// RunCensus counts c.Store at once and then every c.Interval until ctx is
// done.
func (m *Metrics) RunCensus(ctx context.Context, c Census) {
	if c.Interval <= 0 {
		c.Interval = DefaultCensusInterval
	}
	for {
		m.census.count(ctx, c)
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.Interval):
		}
	}
}

func (m *censusMetrics) count(ctx context.Context, c Census) {
	// During a reload two configs count the same store; one count at a
	// time is enough.
	m.countMu.Lock()
	defer m.countMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, censusTimeout)
	defer cancel()
	counted, err := store.Count(ctx, c.Store, c.Now(), report.ExpiringWithin)
	if err != nil {
		if ctx.Err() == context.Canceled {
			return // shutting down
		}
		m.errors.Inc()
		if !m.failing {
			m.failing = true
			c.Logger.Warn("counting tokens for the metrics failed; the token gauges keep their last values", zap.Error(err))
		}
		return
	}
	if m.failing {
		m.failing = false
		c.Logger.Info("counting tokens for the metrics works again")
	}
	for state, n := range counted.Tokens {
		m.tokens.WithLabelValues(state).Set(float64(n))
	}
	m.expiring.Set(float64(counted.ExpiringSoon))
	m.pending.Set(float64(counted.PendingRequests))
	// The wall clock, not c.Now: alerts compare it with Prometheus's
	// time() to see a census that stopped.
	m.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
}
