package caddymodule

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// With handle_errors in the site, refusals go to it as errors: it shapes
// the answer from the placeholders, the RFC 6750 challenge and no-store
// stay, the audit line keeps the status tokengate chose, and the metrics
// still count the decision.
func TestHandleErrorsRestylesRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{extraRoutes: `handle_errors {
		respond "restyled reason={tokengate.reason} error={tokengate.error} id={tokengate.request_id} status={http.error.status_code} message={http.error.message}" 418
	}`})
	secret, _ := e.issue(billingReader(nil))
	const denied = `tokengate_decisions_total{reason="token_missing",result="deny"}`
	before := e.scrape(t)[denied]

	cases := []struct {
		name      string
		method    string
		headers   []string
		status    int
		reason    string
		errCode   string
		challenge string
	}{
		{"no token", "GET", nil, 401, "token_missing", "invalid_token", `Bearer realm="tokengate"`},
		{"write with read scope", "POST", bearer(secret), 403, "scope_missing", "insufficient_scope", `Bearer realm="tokengate", error="insufficient_scope"`},
	}
	for i, c := range cases {
		path := fmt.Sprintf("/billing/restyled-%d", i)
		r := call(t, c.method, e.gateURL+path, c.headers...)
		if r.status != 418 {
			t.Fatalf("%s: got %d %s, want the handle_errors answer 418", c.name, r.status, r.body)
		}
		line := e.auditFor(path)
		want := fmt.Sprintf("restyled reason=%s error=%s id=%s status=%d message=%s", c.reason, c.errCode, line["request_id"], c.status, c.reason)
		if string(r.body) != want {
			t.Errorf("%s: body %q, want %q", c.name, r.body, want)
		}
		if ch := r.header.Get("WWW-Authenticate"); ch != c.challenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, ch, c.challenge)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", c.name, cc)
		}
		if line["status"] != float64(c.status) || line["decision"] != "deny" || line["reasons"].([]any)[0] != c.reason {
			t.Errorf("%s: audit line %v, want deny %s with status %d", c.name, line, c.reason, c.status)
		}
	}
	if got := e.scrape(t)[denied] - before; got != 1 {
		t.Errorf("tokengate_decisions_total{deny,token_missing} rose by %v, want 1", got)
	}

	// An allowed call never reaches the error routes.
	if r := call(t, "GET", e.gateURL+"/billing/restyled-ok", bearer(secret)...); r.status != 200 {
		t.Fatalf("allowed call: %d %s", r.status, r.body)
	}
	if line := e.auditFor("/billing/restyled-ok"); line["status"] != float64(200) {
		t.Errorf("allowed call audited with status %v", line["status"])
	}
}

// Error routes for other status codes do not swallow tokengate's answer:
// Caddy would answer an error no route matches with an empty body, so the
// handler keeps its JSON body there.
func TestHandleErrorsForOtherStatusKeepsJSONBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{extraRoutes: `handle_errors 404 410 {
		respond "gone fishing" 404
	}`})
	r := call(t, "GET", e.gateURL+"/billing/unmatched-error-route")
	if r.status != 401 || r.reason != "token_missing" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q %q, want the JSON 401 token_missing", r.status, r.header.Get("Content-Type"), r.body)
	}
	var body map[string]string
	if err := json.Unmarshal(r.body, &body); err != nil || body["error"] != "invalid_token" || body["request_id"] == "" || len(body) != 3 {
		t.Errorf("body %s, want {error, reason, request_id}", r.body)
	}
	if ch := r.header.Get("WWW-Authenticate"); ch != `Bearer realm="tokengate"` {
		t.Errorf("WWW-Authenticate %q", ch)
	}
	if line := e.auditFor("/billing/unmatched-error-route"); line["status"] != float64(401) {
		t.Errorf("audited with status %v, want 401", line["status"])
	}
	if strings.Contains(string(r.body), "fishing") {
		t.Errorf("the 404 error route answered a 401")
	}
}
