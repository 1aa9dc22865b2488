package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/health"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
	"github.com/tokengate/caddy-tokengate/internal/testutil/opabundle"
)

// siteMetrics serves Caddy's metrics from the gateway site, as the README
// tells operators to (not from the admin endpoint).
const siteMetrics = "route /metrics {\n\t\tmetrics\n\t}"

// probe asks the management site's /healthz or /readyz without a
// credential.
func (e *env) probe(t *testing.T, method, path string) (int, health.Body) {
	t.Helper()
	r := call(t, method, e.mgmtURL+path)
	var b health.Body
	if method != http.MethodHead && r.status != http.StatusUnauthorized {
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatalf("%s %s: %d %q is not JSON: %v", method, path, r.status, r.body, err)
		}
	}
	return r.status, b
}

// siteScrape reads the tokengate samples from the gateway site's metrics
// handler.
func (e *env) siteScrape(t *testing.T) map[string]float64 {
	t.Helper()
	r := call(t, http.MethodGet, e.gateURL+"/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics on the site: %d %s", r.status, r.body)
	}
	samples, _ := parseMetrics(t, r.body)
	return samples
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProbesAndAuditThroughCaddy: /healthz and /readyz answer without a
// credential; an audit file that cannot be written (a directory in its
// place) makes the node not ready (naming audit and nothing else) and
// tokengate_audit_writable 0, and a writable path makes it ready again. Other methods on the probe paths are
// management calls like any other: refused without a credential.
func TestProbesAndAuditThroughCaddy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{extraRoutes: siteMetrics})
	secret, _ := e.issue(billingReader(nil))
	if r := call(t, http.MethodGet, e.gateURL+"/billing/first", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("first call: %d %s", r.status, r.body)
	}

	if status, b := e.probe(t, http.MethodGet, "/healthz"); status != http.StatusOK || b.Status != "live" {
		t.Fatalf("healthz: %d %+v", status, b)
	}
	if status, b := e.probe(t, http.MethodGet, "/readyz"); status != http.StatusOK || b.Status != "ready" || len(b.NotReady) != 0 {
		t.Fatalf("readyz: %d %+v", status, b)
	}
	if status, _ := e.probe(t, http.MethodHead, "/readyz"); status != http.StatusOK {
		t.Fatalf("HEAD readyz: %d", status)
	}
	if r := call(t, http.MethodPost, e.mgmtURL+"/readyz"); r.status != http.StatusUnauthorized || r.reason != "token_missing" {
		t.Fatalf("POST readyz without a credential: %d %s", r.status, r.body)
	}
	s := e.siteScrape(t)
	for series, want := range map[string]float64{
		"tokengate_audit_writable":     1,
		"tokengate_store_up":           1,
		"tokengate_change_lag_seconds": 0, // bolt: no other node to hear from
	} {
		if got, ok := s[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}

	// A directory in the audit file's place: the writer cannot make a
	// file there, and learns so at its next line (a call's), which is held.
	path := filepath.Join(e.dir, "audit.log")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	var body health.Body
	waitFor(t, 5*time.Second, "readyz turns 503", func() bool {
		call(t, http.MethodGet, e.gateURL+"/billing/while-held", bearer(secret)...)
		var status int
		status, body = e.probe(t, http.MethodGet, "/readyz")
		return status == http.StatusServiceUnavailable
	})
	if body.Status != "not_ready" || !slices.Equal(body.NotReady, []string{"audit"}) {
		t.Errorf("not ready body %+v, want audit alone", body)
	}
	if got := e.siteScrape(t)["tokengate_audit_writable"]; got != 0 {
		t.Errorf("tokengate_audit_writable = %v with no audit file to write, want 0", got)
	}
	if status, _ := e.probe(t, http.MethodGet, "/healthz"); status != http.StatusOK {
		t.Errorf("healthz while not ready: %d, want 200 (the process lives)", status)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "readyz back to 200", func() bool {
		call(t, http.MethodGet, e.gateURL+"/billing/after-held", bearer(secret)...)
		status, _ := e.probe(t, http.MethodGet, "/readyz")
		return status == http.StatusOK
	})
	if got := e.siteScrape(t)["tokengate_audit_writable"]; got != 1 {
		t.Errorf("tokengate_audit_writable = %v with the audit file back, want 1", got)
	}
}

// TestPolicyReloadMetrics: a policy folder change that does not compile
// counts as refused, one that does as ok.
func TestPolicyReloadMetrics(t *testing.T) {
	t.Parallel()
	dir, _ := shippedPolicyFolder(t, "")
	e := newEnv(t, envOptions{policyDir: dir, extraRoutes: siteMetrics})
	secret, _ := e.issue(billingReader(nil))
	if r := call(t, http.MethodGet, e.gateURL+"/billing/x", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("call: %d %s", r.status, r.body)
	}
	const ok, refused = `tokengate_policy_reloads_total{result="ok"}`, `tokengate_policy_reloads_total{result="refused"}`
	before := e.siteScrape(t)

	broken := filepath.Join(dir, "broken.rego")
	if err := os.WriteFile(broken, []byte("package tokengate.gateway\n\nreasons contains \"x\" if input.token.nope > 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a refused reload is counted", func() bool { return e.siteScrape(t)[refused] > before[refused] })
	if err := os.WriteFile(broken, []byte("package tokengate.gateway\n\nreasons contains \"x\" if input.route.service == \"nowhere\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a reload put in force is counted", func() bool { return e.siteScrape(t)[ok] > before[ok] })
}

// TestBundleDownloadMetrics: a policy bundle served by the same Caddy is
// fetched (ok), polled again without change (unchanged), and missing
// (failed); a new revision put in force is a policy reload.
func TestBundleDownloadMetrics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	served := filepath.Join(site, "tokengate.tar.gz")
	build := func(name, rev string) {
		built := opabundle.Build(t, opabundle.Policies(t, nil), filepath.Join(dir, name), rev)
		raw, err := os.ReadFile(built)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(served+".tmp", raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(served+".tmp", served); err != nil {
			t.Fatal(err)
		}
	}
	build("v1.tar.gz", "v1")
	routes := fmt.Sprintf("route /bundles/* {\n\t\turi strip_prefix /bundles\n\t\troot * %s\n\t\tfile_server\n\t}\n\t%s", site, siteMetrics)
	e := newEnv(t, envOptions{extraRoutes: routes})
	before := e.siteScrape(t)
	policy := fmt.Sprintf("%s/bundles/tokengate.tar.gz {\n\t\t\tpoll 100ms\n\t\t\ttimeout 2s\n\t\t}", e.gateURL)
	newEnvReusing(e, envOptions{extraRoutes: routes, policyDir: policy})
	e.issue(billingReader(nil))

	grew := func(series string) func() bool {
		return func() bool { return e.siteScrape(t)[series] > before[series] }
	}
	waitFor(t, 10*time.Second, "first fetch counted ok", grew(`tokengate_bundle_downloads_total{result="ok"}`))
	waitFor(t, 10*time.Second, "a poll without change counted unchanged", grew(`tokengate_bundle_downloads_total{result="unchanged"}`))
	build("v2.tar.gz", "v2")
	waitFor(t, 10*time.Second, "the new revision counted as a reload", grew(`tokengate_policy_reloads_total{result="ok"}`))
	refusedBefore := e.siteScrape(t)[`tokengate_policy_reloads_total{result="refused"}`]
	if err := os.Remove(served); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a missing bundle counted failed", grew(`tokengate_bundle_downloads_total{result="failed"}`))
	if got := e.siteScrape(t)[`tokengate_policy_reloads_total{result="refused"}`]; got != refusedBefore {
		t.Errorf("a bundle that could not be fetched counted as a refused policy: %v -> %v", refusedBefore, got)
	}
}

// TestWebhookDeliveryMetrics: events a receiver takes count delivered;
// at a reload, the event in flight to a receiver that never answers
// counts failed and the one queued behind it dropped.
func TestWebhookDeliveryMetrics(t *testing.T) {
	t.Parallel()
	const hookSecret = "whsec-metrics-0123456789abcdef0123456789abcdef"
	good := startHookReceiver(t, hookSecret)
	stuck := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stuck:
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(stuck) }) // runs first: Close waits for the handler
	hooks := fmt.Sprintf("webhook %[1]s/good {\n\t\t\tsecret {env.%[3]s}\n\t\t}\n\t\twebhook %[2]s/hangs {\n\t\t\tsecret {env.%[3]s}\n\t\t}", good.URL, hanging.URL, webhookSecretVar)
	e := newEnv(t, envOptions{appOptions: hooks, extraRoutes: siteMetrics, environ: []string{webhookSecretVar + "=" + hookSecret}})
	e.bootstrap()
	before := e.siteScrape(t)
	for range 2 {
		if status, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil)); status != http.StatusAccepted {
			t.Fatalf("request: %d %s", status, body)
		}
	}
	good.await(t, 2)
	delta := func(result string) float64 {
		series := fmt.Sprintf(`tokengate_webhook_deliveries_total{result=%q}`, result)
		return e.siteScrape(t)[series] - before[series]
	}
	// The receiver has the events before the dispatcher reads its answer
	// and counts them.
	waitFor(t, 10*time.Second, "both deliveries counted", func() bool { return delta("delivered") >= 2 })
	if d := delta("delivered"); d != 2 {
		t.Errorf("delivered grew by %v, want 2", d)
	}
	// The reload stops the old config's dispatcher: it drains for 5s,
	// then gives up on what the hanging receiver holds.
	// (A changed config: Caddy ignores loading the same one again.)
	newEnvReusing(e, envOptions{appOptions: hooks, extraRoutes: siteMetrics, decisionCache: 10, loadTimeout: 15 * time.Second})
	waitFor(t, 15*time.Second, "the reload's losses are counted", func() bool { return delta("dropped")+delta("failed") >= 2 })
	// Which of the two it is depends on the order the dispatcher's worker
	// sees the stop and the queued event; what matters is that nothing
	// lost goes uncounted, and that the losses are not deliveries.
	if d, f := delta("dropped"), delta("failed"); d+f != 2 || d < 0 || f < 1 {
		t.Errorf("dropped grew by %v and failed by %v, want 2 together, failed at least 1", d, f)
	}
	if d := delta("delivered"); d != 2 {
		t.Errorf("delivered grew by %v after the reload, want still 2", d)
	}
}

// TestIdPUpMetric: an issuer that does not answer at start is 0, the same
// issuer answering after a reload is 1.
func TestIdPUpMetric(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	op.SetDown(true)
	e := newEnv(t, envOptions{appOptions: withOIDC(op), extraRoutes: siteMetrics})
	series := fmt.Sprintf(`tokengate_idp_up{issuer=%q}`, op.Issuer())
	waitFor(t, 10*time.Second, "idp_up 0 for an issuer that is down", func() bool {
		v, ok := e.siteScrape(t)[series]
		return ok && v == 0
	})
	op.SetDown(false)
	newEnvReusing(e, envOptions{appOptions: withOIDC(op), extraRoutes: siteMetrics, decisionCache: 10})
	waitFor(t, 10*time.Second, "idp_up 1 once it answers", func() bool { return e.siteScrape(t)[series] == 1 })
	e.issue(billingReader(nil))
}
