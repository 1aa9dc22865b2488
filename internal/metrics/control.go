package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// The control plane's metrics, so that a failing part shows before calls
// start failing:
//
//	tokengate_audit_writable                      1 while audit lines are written, 0 while allowed calls are held
//	tokengate_policy_reloads_total{result}        policy changes put in force (ok) or refused (refused), folder or bundle
//	tokengate_bundle_downloads_total{result}      fetches of a policy bundle: ok (new bytes), unchanged, failed
//	tokengate_webhook_deliveries_total{result}    webhook events delivered, failed (refused or out of attempts), dropped (never sent)
//	tokengate_idp_up{issuer}                      1 when the identity provider answered the last time it was asked
//	tokengate_store_up                            1 when the token store answers a read within 2s
//	tokengate_change_lag_seconds                  seconds since the change feed last confirmed this node had seen every token change (0 for bolt)
//
// The gauges are read when Prometheus scrapes, from the config being
// served (Running): a scrape costs one store read. A policy bundle refused
// with the same error again is counted once, as it is logged once.
type controlMetrics struct {
	policyReloads   *prometheus.CounterVec
	bundleFetches   *prometheus.CounterVec
	webhookOutcomes *prometheus.CounterVec
	gauges          controlGauges
}

// Running are the parts of the config being served that the control
// gauges read at scrape time.
type Running interface {
	// AuditWritable reports whether audit lines are being written.
	AuditWritable() bool
	// StoreUp reports whether the token store answers a read.
	StoreUp(context.Context) bool
	// ChangeLag is how long since the change feed last confirmed that
	// this node had seen every token change.
	ChangeLag() time.Duration
	// IdentityProviders are the issuers people and workloads sign in
	// with.
	IdentityProviders() []*identity.Verifier
}

func newControlMetrics(running func() Running) *controlMetrics {
	const ns = "tokengate"
	m := &controlMetrics{
		policyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "policy_reloads_total",
			Help: "Policy changes (folder or bundle) put in force (ok) or refused, the previous policy staying in force (refused).",
		}, []string{"result"}),
		bundleFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "bundle_downloads_total",
			Help: "Fetches of the policy bundle by result: ok (new bytes read), unchanged (304 or the same bytes), failed (nothing read).",
		}, []string{"result"}),
		webhookOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "webhook_deliveries_total",
			Help: "Webhook events by result: delivered, failed (refused by the receiver or out of attempts), dropped (never sent: queue full or stopping).",
		}, []string{"result"}),
		gauges: controlGauges{
			running: running,
			auditWritable: prometheus.NewDesc("tokengate_audit_writable",
				"1 while audit lines are being written, 0 while they cannot be (allowed calls are then held with 503 audit_unavailable).", nil, nil),
			idpUp: prometheus.NewDesc("tokengate_idp_up",
				"1 when the identity provider answered the last time it was asked (discovery and key fetches), by issuer.", []string{"issuer"}, nil),
			storeUp: prometheus.NewDesc("tokengate_store_up",
				"1 when the token store answers a read within 2s.", nil, nil),
			changeLag: prometheus.NewDesc("tokengate_change_lag_seconds",
				"Seconds since the change feed last confirmed that this node had seen every token change made on any node; past max_staleness the node stops using its caches (0 for a store no other node shares).", nil, nil),
		},
	}
	for _, r := range []string{"ok", "refused"} {
		m.policyReloads.WithLabelValues(r)
	}
	for _, r := range []string{policy.FetchOK, policy.FetchUnchanged, policy.FetchFailed} {
		m.bundleFetches.WithLabelValues(r)
	}
	for _, r := range []string{notify.Delivered, notify.Failed, notify.Dropped} {
		m.webhookOutcomes.WithLabelValues(r)
	}
	return m
}

func (m *controlMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.policyReloads, m.bundleFetches, m.webhookOutcomes, m.gauges}
}

// PolicyReloaded counts a policy change (folder or bundle) put in force
// (ok) or refused.
func (m *Metrics) PolicyReloaded(ok bool) {
	result := "refused"
	if ok {
		result = "ok"
	}
	m.control.policyReloads.WithLabelValues(result).Inc()
}

// BundleFetched counts a fetch of the policy bundle by its result
// (policy.FetchOK, FetchUnchanged, FetchFailed).
func (m *Metrics) BundleFetched(result string) {
	m.control.bundleFetches.WithLabelValues(result).Inc()
}

// WebhookOutcome counts a webhook event by its result (notify.Delivered,
// Failed, Dropped).
func (m *Metrics) WebhookOutcome(result string) {
	m.control.webhookOutcomes.WithLabelValues(result).Inc()
}

// controlGauges reads the state of the running config's parts at scrape
// time, so a gauge cannot be left behind by a part that stopped reporting.
type controlGauges struct {
	running                                  func() Running
	auditWritable, idpUp, storeUp, changeLag *prometheus.Desc
}

func (g controlGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.auditWritable
	ch <- g.idpUp
	ch <- g.storeUp
	ch <- g.changeLag
}

func (g controlGauges) Collect(ch chan<- prometheus.Metric) {
	if g.running == nil {
		return
	}
	r := g.running()
	if r == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(g.auditWritable, prometheus.GaugeValue, bit(r.AuditWritable()))
	ch <- prometheus.MustNewConstMetric(g.storeUp, prometheus.GaugeValue, bit(r.StoreUp(context.Background())))
	ch <- prometheus.MustNewConstMetric(g.changeLag, prometheus.GaugeValue, r.ChangeLag().Seconds())
	for _, v := range r.IdentityProviders() {
		ch <- prometheus.MustNewConstMetric(g.idpUp, prometheus.GaugeValue, bit(v.Up()), v.Issuer())
	}
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
