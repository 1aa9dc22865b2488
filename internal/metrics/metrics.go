// Package metrics holds tokengate's Prometheus collectors: the gateway's
// decisions and caches, the gauges counted from the store (census.go), and
// the health of the parts around the request path (control.go). It knows
// nothing of Caddy: the adapter builds one Metrics, registers it into each
// config's registry and hands the running config's parts to it.
//
//	tokengate_decisions_total{result,reason}       calls by outcome (allow, deny, error) and the reason the client was told; allow has reason "none"
//	tokengate_decision_cache_total{result}         decision cache hits and misses
//	tokengate_policy_eval_seconds                  time per gateway policy evaluation
//	tokengate_store_seconds{op}                    time per store call of the gateway: get_by_hash, consume_use, record_usage
//	tokengate_invalidations_total{source}          cache drops: local (a change made through this node), notify (a change notification from the shared store), reset (the whole cache)
//	tokengate_invalidation_lag_seconds{source}     for revocations: from the revoked_at the revoking node recorded to this node dropping the token
//	tokengate_tokens_rekeyed_total                 tokens found under previous_pepper and moved to the current pepper's hash
//	tokengate_rate_limited_total{service}          calls refused over a rate limit, by the route's service
//
// Label values come from fixed sets: reason is one of the declared codes
// (internal/reason) or "other" (a custom policy may invent any code), so
// no token id, path or other request data ever becomes a label.
package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/store"
)

// reasonOther labels every code that is not declared (custom policies may
// invent any).
const reasonOther = "other"

// Metrics are tokengate's collectors. Build them once per process and
// register them into every config's registry, so that counters survive
// config reloads.
type Metrics struct {
	decisions       *prometheus.CounterVec
	cache           *prometheus.CounterVec
	policyEval      prometheus.Histogram
	storeTime       *prometheus.HistogramVec
	invalidations   *prometheus.CounterVec
	invalidationLag *prometheus.HistogramVec
	rekeyed         prometheus.Counter
	rateLimited     *prometheus.CounterVec

	// Resolved children, so the request path does no label hashing and
	// allocates nothing.
	allowed        prometheus.Counter
	denied, failed map[string]prometheus.Counter
	cacheHit       prometheus.Counter
	cacheMiss      prometheus.Counter
	storeOps       map[string]prometheus.Observer

	// The gauges from the store, decisions by service, build info.
	census *censusMetrics
	// The health of the parts around the request path.
	control *controlMetrics
}

// New builds the collectors. running is asked at every scrape for the
// parts of the config being served, which the control gauges read; it
// returns nil when no config has them.
func New(running func() Running) *Metrics {
	const ns = "tokengate"
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "decisions_total",
			Help: "Gateway calls by result (allow, deny, error) and the reason the client was told (none for allow, other for codes of custom policies).",
		}, []string{"result", "reason"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "decision_cache_total",
			Help: "Decision cache lookups by result (hit, miss).",
		}, []string{"result"}),
		policyEval: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "policy_eval_seconds",
			Help:    "Time per evaluation of the gateway policy.",
			Buckets: prometheus.ExponentialBuckets(5e-6, 2, 14), // 5µs .. 41ms
		}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "store_seconds",
			Help:    "Time per store call of the gateway, by operation (get_by_hash, consume_use, record_usage).",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10), // 10µs .. 2.6s
		}, []string{"op"}),
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "invalidations_total",
			Help: "Tokens dropped from the caches because they changed, by source (local, notify), and whole-cache drops (reset).",
		}, []string{"source"}),
		invalidationLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "invalidation_lag_seconds",
			Help:    "For revocations: time from the revocation being recorded (revoked_at, by the clock of the node that revoked) to this node dropping the token from its caches, by source (local, notify).",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 9), // 100µs .. 6.6s
		}, []string{"source"}),
		rekeyed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "tokens_rekeyed_total",
			Help: "Tokens found under previous_pepper and re-keyed to the current pepper's hash.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "rate_limited_total",
			Help: "Gateway calls refused over a rate limit (the token's own or the policy's), by the route's service.",
		}, []string{"service"}),
		denied:   map[string]prometheus.Counter{},
		failed:   map[string]prometheus.Counter{},
		storeOps: map[string]prometheus.Observer{},
		census:   newCensusMetrics(),
		control:  newControlMetrics(running),
	}
	m.allowed = m.decisions.WithLabelValues(gateway.Allow, "none")
	// Every declared code (the gateway's, the management API's, the
	// identity checks', ...) is its own label value: refusals under deny,
	// failures to decide under error.
	for _, c := range reason.All() {
		if c.Class == reason.Unavailable {
			m.failed[c.Name] = m.decisions.WithLabelValues(gateway.Error, c.Name)
		} else {
			m.denied[c.Name] = m.decisions.WithLabelValues(gateway.Deny, c.Name)
		}
	}
	m.denied[reasonOther] = m.decisions.WithLabelValues(gateway.Deny, reasonOther)
	m.failed[reasonOther] = m.decisions.WithLabelValues(gateway.Error, reasonOther)
	m.cacheHit = m.cache.WithLabelValues(gateway.CacheHit)
	m.cacheMiss = m.cache.WithLabelValues(gateway.CacheMiss)
	for _, op := range []string{"get_by_hash", "consume_use", "record_usage"} {
		m.storeOps[op] = m.storeTime.WithLabelValues(op)
	}
	for _, source := range []string{"local", "notify", "reset"} {
		m.invalidations.WithLabelValues(source)
	}
	return m
}

// Register adds the collectors to a config's registry. The same
// collectors are registered again for every config; Caddy gives each
// config a new registry, and a registry that already has them is fine.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return nil
}

func (m *Metrics) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{m.decisions, m.cache, m.policyEval, m.storeTime, m.invalidations, m.invalidationLag, m.rekeyed, m.rateLimited}
	return append(append(cs, m.census.collectors()...), m.control.collectors()...)
}

// Decision counts one gateway call on a route of service, with the
// outcome and reasons its call line records.
func (m *Metrics) Decision(service, outcome string, reasons []string, cache string) {
	m.census.forService(service).count(outcome)
	switch cache {
	case gateway.CacheHit:
		m.cacheHit.Inc()
	case gateway.CacheMiss:
		m.cacheMiss.Inc()
	}
	if outcome == gateway.Allow {
		m.allowed.Inc()
		return
	}
	byReason := m.denied
	if outcome == gateway.Error {
		byReason = m.failed
	}
	told := reasonOther
	if len(reasons) > 0 {
		told = reason.Main(reasons)
	}
	c, ok := byReason[told]
	switch {
	case ok:
	case reason.Declared(told):
		// A declared code under the other outcome than its class says
		// keeps its own label: the declared codes are a bounded set.
		c = m.decisions.WithLabelValues(outcome, told)
	default:
		c = byReason[reasonOther]
	}
	c.Inc()
	if told == reason.RateLimited {
		// Services are the routes' names from the config: a bounded set.
		m.rateLimited.WithLabelValues(service).Inc()
	}
}

// PolicyEvaluated times one evaluation of the gateway policy.
func (m *Metrics) PolicyEvaluated(d time.Duration) { m.policyEval.Observe(d.Seconds()) }

// StoreCalled times one store call of the gateway; op is get_by_hash,
// consume_use or record_usage (others are not counted).
func (m *Metrics) StoreCalled(op string, d time.Duration) {
	if o, ok := m.storeOps[op]; ok {
		o.Observe(d.Seconds())
	}
}

// Invalidated counts a token dropped from the caches at now, and for a
// revoked token how long after its revocation that happened. source is
// local or notify.
func (m *Metrics) Invalidated(source string, t *store.Token, now time.Time) {
	m.invalidations.WithLabelValues(source).Inc()
	if !t.RevokedAt.IsZero() {
		if lag := now.Sub(t.RevokedAt); lag >= 0 {
			m.invalidationLag.WithLabelValues(source).Observe(lag.Seconds())
		}
	}
}

// Reset counts a drop of every cached token and decision.
func (m *Metrics) Reset() { m.invalidations.WithLabelValues("reset").Inc() }

// Rekeyed counts a token found under the previous pepper and moved to the
// current one's hash.
func (m *Metrics) Rekeyed() { m.rekeyed.Inc() }
