package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
)

func TestAllowedCallReachesUpstreamWithoutCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	secret, id := e.issue(billingReader(nil))

	r := call(t, "GET", e.gateURL+"/billing/allow-1?page=2",
		"Authorization", "bearer "+secret, // the scheme is case-insensitive
		"X-Tokengate-Owner", "mallory", // a spoofed identity header
		"X-Tokengate-Admin", "true")
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	got := e.upstream.received("/billing/allow-1")
	if len(got) != 1 {
		t.Fatalf("upstream got %d requests", len(got))
	}
	h := got[0].Header
	if h.Get("Authorization") != "" {
		t.Error("credential reached the upstream")
	}
	if h.Get("X-Tokengate-Admin") != "" || len(h.Values("X-Tokengate-Owner")) != 1 || h.Get("X-Tokengate-Owner") != "alice" {
		t.Errorf("client-sent identity headers survived: %v", h)
	}
	if h.Get("X-Tokengate-Token-Id") != id || h.Get("X-Tokengate-Scopes") != "billing:read" || !strings.HasPrefix(h.Get("X-Tokengate-Decision-Id"), "dec_") {
		t.Errorf("identity headers: %v", h)
	}

	line := e.auditFor("/billing/allow-1")
	want := map[string]any{"logger": "tokengate.audit", "decision": "allow", "status": 200.0, "token_id": id, "owner": "alice",
		"service": "billing", "client_ip": "127.0.0.1", "method": "GET", "cache": "miss", "schema": 2.0}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("audit %s = %v, want %v", k, line[k], v)
		}
	}
	if line["decision_id"] != h.Get("X-Tokengate-Decision-Id") {
		t.Errorf("audit decision_id %v differs from the one the upstream got", line["decision_id"])
	}

	// The same call again is answered from the decision cache.
	e.settleDecisionCaches()
	if r := call(t, "GET", e.gateURL+"/billing/allow-1", bearer(secret)...); r.status != 200 {
		t.Fatalf("second call: %d", r.status)
	}
	var hits int
	for _, l := range e.auditLines() {
		if l["path"] == "/billing/allow-1" && l["cache"] == "hit" {
			hits++
		}
	}
	if hits != 1 {
		t.Errorf("second call was not a cache hit (%d hits)", hits)
	}
}

func TestPlaceholdersReachTheNextHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000, extraRoutes: `route /whoami/* {
		tokengate billing
		header Content-Type text/plain
		respond "{http.auth.user.id}|{tokengate.token_id}|{tokengate.scopes}|{tokengate.decision_id}"
	}`})
	secret, id := e.issue(billingReader(nil))
	r := call(t, "GET", e.gateURL+"/whoami/x", bearer(secret)...)
	parts := strings.Split(string(r.body), "|")
	if r.status != 200 || len(parts) != 4 || parts[0] != "alice" || parts[1] != id || parts[2] != "billing:read" || !strings.HasPrefix(parts[3], "dec_") {
		t.Fatalf("placeholders: %d %q", r.status, r.body)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	secret, _ := e.issue(billingReader(map[string]any{"cidrs": []string{"127.0.0.0/8", "2001:db8::/32"}}))
	otherIPs, _ := e.issue(billingReader(map[string]any{"cidrs": []string{"10.0.0.0/8"}}))
	revoked, revokedID := e.issue(billingReader(nil))
	if status, body := e.admin("POST", "/tokengate/tokens/"+revokedID+"/revoke", map[string]string{"reason": "leaked in chat"}); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	future, _ := e.issue(billingReader(map[string]any{"not_before": e.now().Add(time.Hour)}))
	searchKey, _ := e.issue(map[string]any{"owner": "bob", "purpose": "search", "scopes": []string{"search:read"}, "services": []string{"search"}, "ttl": "1h"})

	// Well-formed secrets nobody issued: right prefix, length, checksum.
	unknown, inQuery := token.NewSecret(), token.NewSecret()
	flipped := []byte(secret)
	flipped[10] ^= 0x01

	cases := []struct {
		name      string
		method    string
		url       string
		headers   []string
		status    int
		reason    string
		challenge string
	}{
		{"no header", "GET", e.gateURL, nil, 401, "token_missing", `Bearer realm="tokengate"`},
		{"token in query string only", "GET", e.gateURL + "?access_token=" + inQuery, nil, 401, "token_missing", `Bearer realm="tokengate"`},
		{"basic scheme", "GET", e.gateURL, []string{"Authorization", "Basic YWxpY2U6c2VjcmV0"}, 401, "token_missing", `Bearer realm="tokengate"`},
		{"empty authorization", "GET", e.gateURL, []string{"Authorization", ""}, 401, "token_malformed", `error="invalid_token"`},
		{"bearer without token", "GET", e.gateURL, []string{"Authorization", "Bearer "}, 401, "token_malformed", `error="invalid_token"`},
		{"repeated authorization", "GET", e.gateURL, []string{"Authorization", "Bearer " + secret, "Authorization", "Bearer " + secret}, 401, "token_malformed", `error="invalid_token"`},
		{"8 KiB token", "GET", e.gateURL, bearer(strings.Repeat("A", 8192)), 401, "token_malformed", `error="invalid_token"`},
		{"non-ASCII bytes", "GET", e.gateURL, bearer("tg_\xc3\xa9\xc3\xa9" + secret[7:]), 401, "token_malformed", `error="invalid_token"`},
		{"checksum mismatch", "GET", e.gateURL, bearer(string(flipped)), 401, "token_malformed", `error="invalid_token"`},
		{"unknown token", "GET", e.gateURL, bearer(unknown), 401, "token_unknown", `error="invalid_token"`},
		{"revoked", "GET", e.gateURL, bearer(revoked), 401, "token_revoked", `error="invalid_token"`},
		{"not yet valid", "GET", e.gateURL, bearer(future), 401, "token_not_yet_valid", `error="invalid_token"`},
		{"wrong service", "GET", e.gateURL + "/search/", []string{"X-Api-Key", secret}, 403, "service_not_bound", `error="insufficient_scope"`},
		{"write with read scope", "POST", e.gateURL, bearer(secret), 403, "scope_missing", `error="insufficient_scope"`},
		{"delete with read scope", "DELETE", e.gateURL, bearer(secret), 403, "scope_missing", `error="insufficient_scope"`},
		{"client outside CIDR", "GET", e.gateURL, bearer(otherIPs), 403, "ip_not_allowed", `error="insufficient_scope"`},
		{"forwarded IPv6 outside CIDR", "GET", e.gateURL, append(bearer(secret), "X-Forwarded-For", "2001:db9::1"), 403, "ip_not_allowed", `error="insufficient_scope"`},
		{"bearer on an X-Api-Key route", "GET", e.gateURL + "/search/", bearer(searchKey), 401, "token_missing", `Bearer realm="tokengate"`},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := c.url
			if base == e.gateURL {
				base += "/billing/"
			}
			path := fmt.Sprintf("refusal-%d", i)
			url := base + path
			if q := strings.Index(c.url, "?"); q >= 0 {
				url = e.gateURL + "/billing/" + path + c.url[q:]
			}
			r := call(t, c.method, url, c.headers...)
			if r.status != c.status || r.reason != c.reason {
				t.Fatalf("got %d %q, want %d %q (body %s)", r.status, r.reason, c.status, c.reason, r.body)
			}
			if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, c.challenge) ||
				(c.reason == "token_missing" && strings.Contains(ch, "error=")) {
				t.Errorf("WWW-Authenticate %q, want %q", ch, c.challenge)
			}
			var body map[string]string
			if err := json.Unmarshal(r.body, &body); err != nil || body["request_id"] == "" || body["error"] == "" {
				t.Errorf("body %s", r.body)
			}
			if strings.Contains(string(r.body), secret[3:]) {
				t.Error("the response echoes the token")
			}
			if n := len(e.upstream.received(strings.SplitN(strings.TrimPrefix(url, e.gateURL), "?", 2)[0])); n != 0 {
				t.Errorf("a refused call reached the upstream %d times", n)
			}
			line := e.auditFor(strings.SplitN(strings.TrimPrefix(url, e.gateURL), "?", 2)[0])
			if line["decision"] != "deny" || line["status"] != float64(c.status) || line["request_id"] != r.reqID {
				t.Errorf("audit line %v", line)
			}
			if reasons, _ := line["reasons"].([]any); !slices.Contains(reasons, any(c.reason)) {
				t.Errorf("audit reasons %v, want %s among them", line["reasons"], c.reason)
			}
		})
	}
}

func TestForwardedClientIPOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	v6, _ := e.issue(billingReader(map[string]any{"cidrs": []string{"2001:db8::/32"}}))

	// gatePort trusts 127.0.0.1 to say who the client is.
	if r := call(t, "GET", e.gateURL+"/billing/xff-trusted", append(bearer(v6), "X-Forwarded-For", "2001:db8::7")...); r.status != 200 {
		t.Fatalf("trusted proxy, client in range: %d %s", r.status, r.body)
	}
	if line := e.auditFor("/billing/xff-trusted"); line["client_ip"] != "2001:db8::7" {
		t.Errorf("audit client_ip %v", line["client_ip"])
	}
	// plainPort trusts nobody, so the header is ignored and 127.0.0.1 is outside the range.
	if r := call(t, "GET", e.plainURL+"/billing/xff-untrusted", append(bearer(v6), "X-Forwarded-For", "2001:db8::7")...); r.status != 403 || r.reason != "ip_not_allowed" {
		t.Fatalf("untrusted X-Forwarded-For was believed: %d %s", r.status, r.body)
	}
	// A direct IPv6 client.
	v6loop, _ := e.issue(billingReader(map[string]any{"cidrs": []string{"::1/128"}}))
	if r := call(t, "GET", e.plainURLv6+"/billing/direct-v6", bearer(v6loop)...); r.status != 200 {
		t.Fatalf("direct IPv6 client in range: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", e.plainURL+"/billing/direct-v4", bearer(v6loop)...); r.status != 403 {
		t.Fatalf("IPv4 client with an IPv6-only token: %d", r.status)
	}
}

func TestWriteScopeAndMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	writer, _ := e.approvedToken(billingReader(map[string]any{"scopes": []string{"billing:write"}}))
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH"} {
		if r := call(t, m, e.gateURL+"/billing/w-"+m, bearer(writer)...); r.status != 200 {
			t.Errorf("%s with billing:write: %d %s", m, r.status, r.body)
		}
	}
	// DELETE needs billing:delete, which grants nothing else.
	if r := call(t, "DELETE", e.gateURL+"/billing/w-DELETE", bearer(writer)...); r.status != 403 || r.reason != "scope_missing" {
		t.Errorf("DELETE with billing:write: %d %s", r.status, r.body)
	}
	// An upstream that upper-cases methods would read "delete" as DELETE.
	if r := call(t, "delete", e.gateURL+"/billing/w-delete", bearer(writer)...); r.status != 403 || r.reason != "scope_missing" {
		t.Errorf("lower-case delete with billing:write: %d %s", r.status, r.body)
	}
	deleter, _ := e.approvedToken(billingReader(map[string]any{"scopes": []string{"billing:delete"}}))
	if r := call(t, "DELETE", e.gateURL+"/billing/d-DELETE", bearer(deleter)...); r.status != 200 {
		t.Errorf("DELETE with billing:delete: %d %s", r.status, r.body)
	}
	for _, m := range []string{"GET", "POST", "PUT", "PATCH"} {
		if r := call(t, m, e.gateURL+"/billing/d-"+m, bearer(deleter)...); r.status != 403 || r.reason != "scope_missing" {
			t.Errorf("%s with billing:delete: %d %s", m, r.status, r.body)
		}
	}
}

func TestExpiryAndNotBeforeFollowTheClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	secret, _ := e.issue(billingReader(map[string]any{"ttl": "30m"}))
	soon, _ := e.issue(billingReader(map[string]any{"not_before": e.now().Add(10 * time.Minute)}))
	if r := call(t, "GET", e.gateURL+"/billing/exp-1", bearer(secret)...); r.status != 200 {
		t.Fatalf("fresh token: %d", r.status)
	}
	if r := call(t, "GET", e.gateURL+"/billing/nbf-1", bearer(soon)...); r.reason != "token_not_yet_valid" {
		t.Fatalf("early token: %d %s", r.status, r.reason)
	}
	// The decisions above are cached; moving the clock past the token's
	// timestamps must still change the answer.
	e.advance(31 * time.Minute)
	if r := call(t, "GET", e.gateURL+"/billing/exp-1", bearer(secret)...); r.status != 401 || r.reason != "token_expired" {
		t.Fatalf("expired token: %d %s", r.status, r.reason)
	}
	if r := call(t, "GET", e.gateURL+"/billing/nbf-1", bearer(soon)...); r.status != 200 {
		t.Fatalf("token after not_before: %d %s", r.status, r.body)
	}
}

func TestUseLimitedTokenUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	secret, id := e.issue(billingReader(map[string]any{"max_uses": 1}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	reasons := map[string]int{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := call(t, "GET", e.gateURL+"/billing/once", bearer(secret)...)
			mu.Lock()
			statuses[r.status]++
			reasons[r.reason]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[200] != 1 || statuses[401] != 49 || reasons["uses_exhausted"] != 49 {
		t.Fatalf("statuses %v reasons %v, want exactly one 200 and 49 uses_exhausted", statuses, reasons)
	}
	if n := len(e.upstream.received("/billing/once")); n != 1 {
		t.Fatalf("upstream got %d calls", n)
	}
	_, body := e.admin("GET", "/tokengate/tokens/"+id, nil)
	var view TokenView
	_ = json.Unmarshal(body, &view)
	if view.Uses != 1 || view.State != "exhausted" {
		t.Fatalf("inventory shows uses=%d state=%s", view.Uses, view.State)
	}
}

func TestRevokeAndRotateTakeEffectOnTheNextCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	secret, id := e.issue(billingReader(nil))
	for i := 0; i < 2; i++ { // miss, then hit
		if r := call(t, "GET", e.gateURL+"/billing/rev", bearer(secret)...); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	e.admin("POST", "/tokengate/tokens/"+id+"/revoke", map[string]string{"reason": "owner left"})
	if r := call(t, "GET", e.gateURL+"/billing/rev", bearer(secret)...); r.status != 401 || r.reason != "token_revoked" {
		t.Fatalf("revoked token after a cached allow: %d %s", r.status, r.reason)
	}

	old, oldID := e.issue(billingReader(nil))
	call(t, "GET", e.gateURL+"/billing/rot", bearer(old)...)
	status, body := e.admin("POST", "/tokengate/tokens/"+oldID+"/rotate", map[string]string{"grace": "5m"})
	if status != 201 {
		t.Fatalf("rotate: %d %s", status, body)
	}
	var issued IssuedToken
	_ = json.Unmarshal(body, &issued)
	remember(issued.Secret)
	if issued.Token.RotatedFrom != oldID || issued.Secret == old {
		t.Fatalf("successor %+v", issued.Token)
	}
	for _, s := range []string{old, issued.Secret} {
		if r := call(t, "GET", e.gateURL+"/billing/rot", bearer(s)...); r.status != 200 {
			t.Fatalf("within grace: %d %s", r.status, r.body)
		}
	}
	e.advance(6 * time.Minute)
	if r := call(t, "GET", e.gateURL+"/billing/rot", bearer(old)...); r.status != 401 || r.reason != "token_rotated" {
		t.Fatalf("old secret after grace: %d %s", r.status, r.reason)
	}
	if r := call(t, "GET", e.gateURL+"/billing/rot", bearer(issued.Secret)...); r.status != 200 {
		t.Fatalf("new secret after grace: %d", r.status)
	}
	if status, body := e.admin("POST", "/tokengate/tokens/"+oldID+"/rotate", map[string]string{}); status != 409 {
		t.Fatalf("rotating a rotated token: %d %s", status, body)
	}
}

func TestPolicyFailureFailsClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Both rules match a GET to /: OPA reports a conflict at evaluation time.
	src := `package tokengate.gateway
reasons contains "never" if input.now < 0
scope := "billing:read" if input.request.method == "GET"
scope := "billing:write" if startswith(input.request.path, "/")
`
	if err := os.WriteFile(filepath.Join(dir, "gateway.rego"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	admin, _ := fs.ReadFile(policies.FS, "admin.rego")
	if err := os.WriteFile(filepath.Join(dir, "admin.rego"), admin, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{decisionCache: 1000, policyDir: dir})
	secret, _ := e.issue(billingReader(nil))
	r := call(t, "GET", e.gateURL+"/billing/conflict", bearer(secret)...)
	if r.status != 503 || r.reason != "policy_unavailable" {
		t.Fatalf("policy error: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "conflict") || strings.Contains(string(r.body), "rego") {
		t.Errorf("503 body leaks internals: %s", r.body)
	}
	if len(e.upstream.received("/billing/conflict")) != 0 {
		t.Error("call reached the upstream despite the policy failure")
	}
	if line := e.auditFor("/billing/conflict"); line["decision"] != "error" || line["status"] != 503.0 {
		t.Errorf("audit %v", line)
	}
}

func TestStoreFailureFailsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	secret, _ := e.issue(billingReader(nil))
	// Break the real store underneath the running gateway.
	e.closeStore()
	r := call(t, "GET", e.gateURL+"/billing/store-down", bearer(secret)...)
	if r.status != 503 || r.reason != "store_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("store failure: %d %s", r.status, r.body)
	}
	if line := e.auditFor("/billing/store-down"); line["decision"] != "error" {
		t.Errorf("audit %v", line)
	}
	status, body := e.admin("GET", "/tokengate/tokens", nil)
	if status != 503 || strings.Contains(string(body), "database not open") {
		t.Errorf("admin list with the store down: %d %s", status, body)
	}
}

// With no log taking tokengate.audit the handler skips everything a line
// needs (the response recorder, the request id) and hands the answer
// straight on: the client still gets the upstream's answer, the next
// handler the placeholders, and a management call the admin policy
// refuses still counts as a deny.
func TestAllowedCallsWithoutAnAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000, auditOff: true, extraRoutes: `route /whoami/* {
		tokengate billing
		header Content-Type text/plain
		respond "{http.auth.user.id}|{tokengate.token_id}|{tokengate.scopes}|{tokengate.decision_id}" 202
	}`})
	// Caddy's logs filter by logger name when an entry is checked: the
	// handler must see that none takes the audit lines.
	for _, enabled := range e.auditEnabled() {
		if enabled {
			t.Error("audit lines enabled with no log taking tokengate.audit")
		}
	}
	secret, id := e.issue(billingReader(nil))
	for range 2 { // a miss, then a hit
		r := call(t, "GET", e.gateURL+"/whoami/x", bearer(secret)...)
		parts := strings.Split(string(r.body), "|")
		if r.status != 202 || len(parts) != 4 || parts[0] != "alice" || parts[1] != id || parts[2] != "billing:read" || !strings.HasPrefix(parts[3], "dec_") {
			t.Fatalf("placeholders: %d %q", r.status, r.body)
		}
		e.settleDecisionCaches()
	}
	if r := call(t, "GET", e.gateURL+"/billing/items/1", bearer(secret)...); r.status != 200 {
		t.Fatalf("upstream call: %d", r.status)
	}
	e.upstream.mu.Lock()
	seen := e.upstream.requests[len(e.upstream.requests)-1].Header
	e.upstream.mu.Unlock()
	if seen.Get("X-Tokengate-Scopes") != "billing:read" || seen.Get("X-Tokengate-Owner") != "alice" || seen.Get("X-Tokengate-Token-Id") != id {
		t.Errorf("upstream saw identity headers %v", seen)
	}

	e.bootstrap()
	_, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil))
	req := decode[RequestOutcome](t, body).Request
	aliceApprover, _ := e.approvedToken(map[string]any{
		"owner": "alice", "purpose": "approve for the finance team", "scopes": []string{"tokens:approve"},
		"services": []string{"tokengate-admin"}, "ttl": "1h"})
	before := e.scrape(t)
	// The gateway lets the call through (the token may approve); the
	// admin policy refuses it (alice asked for the request herself).
	status, body := e.mgmt(aliceApprover, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{})
	wantRefusal(t, "self-approval", status, body, http.StatusForbidden, "self_approval")
	const refused = `tokengate_service_decisions_total{result="deny",service="tokengate-admin"}`
	deadline := time.Now().Add(3 * time.Second)
	for e.scrape(t)[refused]-before[refused] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%s grew by %v, want 1", refused, e.scrape(t)[refused]-before[refused])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(e.auditLines()); n != 0 {
		t.Errorf("%d audit lines written with no audit log configured", n)
	}
	if b, _ := os.ReadFile(filepath.Join(e.dir, "caddy.log")); bytes.Contains(b, []byte(`"logger":"tokengate.audit"`)) {
		t.Error("audit lines went to Caddy's log")
	}
}
