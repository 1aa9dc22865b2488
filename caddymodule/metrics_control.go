package caddymodule

import (
	"context"

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
// The gauges are read when Prometheus scrapes, from the config Caddy is
// running: a scrape costs one store read. A policy bundle refused with the
// same error again is counted once, as it is logged once.
type controlMetrics struct {
	policyReloads   *prometheus.CounterVec
	bundleFetches   *prometheus.CounterVec
	webhookOutcomes *prometheus.CounterVec
	gauges          controlGauges
}

func newControlMetrics() *controlMetrics {
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

func (m *controlMetrics) policyReloaded(ok bool) {
	result := "refused"
	if ok {
		result = "ok"
	}
	m.policyReloads.WithLabelValues(result).Inc()
}

func (m *controlMetrics) bundleFetched(result string) {
	m.bundleFetches.WithLabelValues(result).Inc()
}

func (m *controlMetrics) webhookOutcome(result string) {
	m.webhookOutcomes.WithLabelValues(result).Inc()
}

// controlGauges reads the state of the running config's parts at scrape
// time, so a gauge cannot be left behind by a part that stopped reporting.
type controlGauges struct {
	auditWritable, idpUp, storeUp, changeLag *prometheus.Desc
}

func (g controlGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.auditWritable
	ch <- g.idpUp
	ch <- g.storeUp
	ch <- g.changeLag
}

func (g controlGauges) Collect(ch chan<- prometheus.Metric) {
	a := currentApp()
	if a == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(g.auditWritable, prometheus.GaugeValue, bit(a.audit.Health().Healthy()))
	ch <- prometheus.MustNewConstMetric(g.storeUp, prometheus.GaugeValue, bit(a.storeUp(context.Background())))
	_, blind := a.changeFeed()
	ch <- prometheus.MustNewConstMetric(g.changeLag, prometheus.GaugeValue, blind.Seconds())
	for _, v := range a.issuers() {
		ch <- prometheus.MustNewConstMetric(g.idpUp, prometheus.GaugeValue, bit(v.Up()), v.Issuer())
	}
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

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
