package caddymodule

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
)

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return v
}

func wantRefusal(t *testing.T, what string, status int, body []byte, wantStatus int, wantReason string) {
	t.Helper()
	e := APIError{}
	_ = json.Unmarshal(body, &e)
	if status != wantStatus || e.Reason != wantReason {
		t.Errorf("%s: got %d %s, want %d %s", what, status, body, wantStatus, wantReason)
	}
}

func writeRequest(extra map[string]any) map[string]any {
	spec := map[string]any{
		"owner": "billing-exporter", "purpose": "push invoices to the ledger",
		"scopes": []string{"billing:write"}, "services": []string{"billing"}, "ttl": "24h",
	}
	for k, v := range extra {
		spec[k] = v
	}
	return spec
}

// TestTwoPersonFlowEndToEnd walks one token through its whole life:
// request -> pending -> approve by the other person -> claim -> use ->
// rotate -> old secret within grace -> revoke -> denied.
func TestTwoPersonFlowEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	e.bootstrap()

	status, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil))
	if status != http.StatusAccepted || strings.Contains(string(body), `"secret"`) {
		t.Fatalf("write request: %d %s", status, body)
	}
	req := decode[RequestOutcome](t, body).Request
	if req.Status != "pending" || req.RequestedBy != "alice" {
		t.Fatalf("request %+v", req)
	}

	status, body = e.mgmt(e.approver, "GET", "/v1/requests?status=pending", nil)
	if pending := decode[[]RequestView](t, body); status != 200 || len(pending) != 1 || pending[0].ID != req.ID {
		t.Fatalf("pending list: %d %s", status, body)
	}

	status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{"reason": "ledger migration, ticket FIN-12"})
	if status != 200 || strings.Contains(string(body), "secret") || strings.Contains(string(body), "tg_") {
		t.Fatalf("approve (the approver must not get a secret): %d %s", status, body)
	}
	if approved := decode[RequestOutcome](t, body).Request; approved.Status != "approved" || approved.DecidedBy != "bob" || approved.ClaimBy == nil {
		t.Fatalf("approved request %+v", approved)
	}

	status, body = e.mgmt(e.requester, "POST", "/v1/requests/"+req.ID+"/claim", nil)
	if status != http.StatusCreated {
		t.Fatalf("claim: %d %s", status, body)
	}
	claimed := decode[RequestOutcome](t, body)
	remember(claimed.Secret)
	if claimed.Token.ApprovedBy != "bob" || claimed.Token.CreatedBy != "alice" || claimed.Request.TokenID != claimed.Token.ID {
		t.Fatalf("claimed token %+v", claimed.Token)
	}
	status, body = e.mgmt(e.requester, "POST", "/v1/requests/"+req.ID+"/claim", nil)
	wantRefusal(t, "second claim", status, body, http.StatusGone, "request_claimed")

	secret := claimed.Secret
	if r := call(t, "POST", e.gateURL+"/billing/flow-1", bearer(secret)...); r.status != 200 {
		t.Fatalf("use after claim: %d %s", r.status, r.body)
	}

	status, body = e.mgmt(e.requester, "POST", "/v1/tokens/"+claimed.Token.ID+"/rotate", map[string]string{"grace": "2m"})
	if status != http.StatusCreated {
		t.Fatalf("rotate: %d %s", status, body)
	}
	rotated := decode[IssuedToken](t, body)
	remember(rotated.Secret)
	for _, s := range []string{secret, rotated.Secret} {
		if r := call(t, "POST", e.gateURL+"/billing/flow-2", bearer(s)...); r.status != 200 {
			t.Fatalf("within grace: %d %s", r.status, r.body)
		}
	}
	e.advance(3 * time.Minute)
	if r := call(t, "POST", e.gateURL+"/billing/flow-2", bearer(secret)...); r.reason != "token_rotated" {
		t.Fatalf("old secret after grace: %d %s", r.status, r.reason)
	}

	status, body = e.mgmt(e.approver, "POST", "/v1/tokens/"+rotated.Token.ID+"/revoke", map[string]string{"reason": "test"})
	wantRefusal(t, "revoke by a stranger", status, body, http.StatusForbidden, "not_owner")
	status, body = e.mgmt(e.requester, "POST", "/v1/tokens/"+rotated.Token.ID+"/revoke", map[string]string{"reason": "migration done"})
	if status != 200 {
		t.Fatalf("revoke by the requester: %d %s", status, body)
	}
	if r := call(t, "POST", e.gateURL+"/billing/flow-3", bearer(rotated.Secret)...); r.status != 401 || r.reason != "token_revoked" {
		t.Fatalf("after revoke: %d %s", r.status, r.reason)
	}

	// Every step left a management audit line.
	seen := map[string]bool{}
	for _, l := range e.auditLines() {
		if l["outcome"] == "success" {
			seen[l["msg"].(string)] = true
		}
	}
	for _, msg := range []string{"token.bootstrap", "token.requested", "token.approved", "token.claimed", "token.rotated", "token.revoked"} {
		if !seen[msg] {
			t.Errorf("no %s audit line", msg)
		}
	}
}

func TestJustInTimeRequestIsIssuedAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000, policyDir: directoryKnowsAlice(t)})
	e.bootstrap()
	spec := billingReader(map[string]any{"ttl": "30m", "cidrs": []string{"127.0.0.0/8"}})
	status, body := e.mgmt(e.requester, "POST", "/v1/requests", spec)
	if status != http.StatusCreated {
		t.Fatalf("jit request: %d %s", status, body)
	}
	out := decode[RequestOutcome](t, body)
	remember(out.Secret)
	if out.Secret == "" || out.Token.ApprovedBy != "policy:just-in-time" || out.Request.Status != "claimed" {
		t.Fatalf("jit outcome %+v", out)
	}
	if r := call(t, "GET", e.gateURL+"/billing/jit", bearer(out.Secret)...); r.status != 200 {
		t.Fatalf("jit token: %d", r.status)
	}
	// The same request without a binding waits for a person.
	delete(spec, "cidrs")
	if status, _ := e.mgmt(e.requester, "POST", "/v1/requests", spec); status != http.StatusAccepted {
		t.Fatalf("unbound read request: %d, want 202", status)
	}
}

func TestSeparationOfDutiesViolations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	e.bootstrap()
	_, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil))
	req := decode[RequestOutcome](t, body).Request

	status, body := e.mgmt(e.requester, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{})
	wantRefusal(t, "requester approving with a request token", status, body, http.StatusForbidden, "scope_missing")

	status, body = e.mgmt(e.requester, "POST", "/v1/requests", map[string]any{
		"owner": "alice", "purpose": "do everything", "scopes": []string{"tokens:request", "tokens:approve"},
		"services": []string{"tokengate-admin"}, "ttl": "1h"})
	wantRefusal(t, "token holding both duties", status, body, http.StatusForbidden, "duties_combined")

	// Alice obtains a second management token, one that may approve
	// (bob approves that, legitimately). With it she tries to approve her
	// own request: same person, so refused.
	aliceApprover, _ := e.approvedToken(map[string]any{
		"owner": "alice", "purpose": "approve for the finance team", "scopes": []string{"tokens:approve"},
		"services": []string{"tokengate-admin"}, "ttl": "1h"})
	status, body = e.mgmt(aliceApprover, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{})
	wantRefusal(t, "self-approval through a second token", status, body, http.StatusForbidden, "self_approval")

	// Bob approves, then tries to take the secret himself.
	if status, body := e.mgmt(e.approver, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{}); status != 200 {
		t.Fatalf("approve: %d %s", status, body)
	}
	status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+req.ID+"/claim", nil)
	wantRefusal(t, "approver claiming", status, body, http.StatusForbidden, "not_requester")

	status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{})
	wantRefusal(t, "approving twice", status, body, http.StatusConflict, "request_not_pending")

	// Nobody claims: after 15 minutes the approval lapses.
	e.advance(16 * time.Minute)
	status, body = e.mgmt(e.requester, "POST", "/v1/requests/"+req.ID+"/claim", nil)
	wantRefusal(t, "claim after the window", status, body, http.StatusGone, "request_lapsed")

	status, body = e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": "carol", "approver": "dave"})
	wantRefusal(t, "second bootstrap", status, body, http.StatusConflict, "already_bootstrapped")

	// Management calls without a valid management token never reach the API.
	status, _ = e.mgmt("", "GET", "/v1/tokens", nil)
	if status != http.StatusUnauthorized {
		t.Errorf("no token: %d", status)
	}
	dataToken, _ := e.issue(billingReader(nil))
	status, body = e.mgmt(dataToken, "GET", "/v1/tokens", nil)
	wantRefusal(t, "data-plane token on the management API", status, body, http.StatusForbidden, "service_not_bound")

	refused := 0
	for _, l := range e.auditLines() {
		if l["outcome"] == "refused" {
			refused++
		}
	}
	if refused < 6 {
		t.Errorf("only %d refused management actions were audited", refused)
	}
}

func TestLocalOperatorIsBoundedByPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	status, body := e.admin("POST", "/tokengate/tokens", billingReader(map[string]any{"scopes": []string{"billing:write"}}))
	wantRefusal(t, "local write token", status, body, http.StatusForbidden, "local_operator_bounds")
	status, body = e.admin("POST", "/tokengate/tokens", billingReader(map[string]any{"ttl": "2h"}))
	wantRefusal(t, "local long token", status, body, http.StatusForbidden, "local_operator_bounds")
	status, body = e.admin("POST", "/tokengate/tokens", map[string]any{"owner": "x", "purpose": "p", "scopes": []string{"tokens:read"}, "services": []string{"tokengate-admin"}, "ttl": "1h"})
	wantRefusal(t, "local management token", status, body, http.StatusForbidden, "management_token_needs_approval")
	status, body = e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": "alice", "approver": "alice"})
	wantRefusal(t, "bootstrap for one person", status, body, http.StatusForbidden, "self_approval")

	// Revocation is always allowed, even of a token the operator could not
	// have issued.
	writer, id := e.approvedToken(writeRequest(nil))
	if status, body := e.admin("POST", "/tokengate/tokens/"+id+"/revoke", map[string]string{"reason": "incident 42"}); status != 200 {
		t.Fatalf("local revoke: %d %s", status, body)
	}
	if r := call(t, "POST", e.gateURL+"/billing/local-revoked", bearer(writer)...); r.reason != "token_revoked" {
		t.Fatalf("after local revoke: %d %s", r.status, r.reason)
	}
	status, body = e.admin("POST", "/tokengate/tokens/"+id+"/rotate", map[string]string{})
	wantRefusal(t, "local rotate of a write token", status, body, http.StatusForbidden, "local_operator_bounds")
}

func TestManagementBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	e.bootstrap()
	raw := func(secret, method, path, contentType, body string) (int, []byte) {
		req, _ := http.NewRequest(method, e.mgmtURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	good, _ := json.Marshal(writeRequest(nil))
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		reason                                string
	}{
		{"garbage JSON", "POST", "/v1/requests", "application/json", "{not json", 400, "body_invalid"},
		{"empty body", "POST", "/v1/requests", "application/json", "", 400, "body_invalid"},
		{"two JSON values", "POST", "/v1/requests", "application/json", string(good) + string(good), 400, "body_invalid"},
		{"unknown field", "POST", "/v1/requests", "application/json", `{"owner":"a","purpose":"p","scopes":["a:read"],"services":["a"],"ttl":"1h","admin":true}`, 400, "body_invalid"},
		{"wrong type", "POST", "/v1/requests", "application/json", `{"owner":"a","scopes":"a:read"}`, 400, "body_invalid"},
		{"huge body", "POST", "/v1/requests", "application/json", `{"purpose":"` + strings.Repeat("x", 100<<10) + `"}`, 413, "body_too_large"},
		{"form body", "POST", "/v1/requests", "application/x-www-form-urlencoded", "owner=a", 415, "content_type_invalid"},
		{"negative ttl", "POST", "/v1/requests", "application/json", jsonOf(writeRequest(map[string]any{"ttl": "-1h"})), 400, "ttl_invalid"},
		{"ttl beyond max", "POST", "/v1/requests", "application/json", jsonOf(writeRequest(map[string]any{"ttl": "100h"})), 400, "ttl_exceeds_max"},
		{"malformed CIDR", "POST", "/v1/requests", "application/json", jsonOf(writeRequest(map[string]any{"cidrs": []string{"10.0.0.0/33"}})), 400, "cidr_invalid"},
		{"unknown scope format", "POST", "/v1/requests", "application/json", jsonOf(writeRequest(map[string]any{"scopes": []string{"everything"}})), 400, "scope_invalid"},
		{"no purpose", "POST", "/v1/requests", "application/json", jsonOf(writeRequest(map[string]any{"purpose": ""})), 400, "purpose_required"},
		{"negative max_uses", "POST", "/v1/requests", "application/json", jsonOf(writeRequest(map[string]any{"max_uses": -1})), 400, "max_uses_invalid"},
		{"unknown request", "POST", "/v1/requests/req_nope/approve", "application/json", "{}", 404, "request_not_found"},
		{"unknown token", "GET", "/v1/tokens/tok_nope", "", "", 404, "token_not_found"},
		{"unknown token revoke", "POST", "/v1/tokens/tok_nope/revoke", "application/json", `{"reason":"x"}`, 404, "token_not_found"},
		{"bad grace", "POST", "/v1/tokens/tok_nope/rotate", "application/json", `{"grace":"soon"}`, 400, "grace_invalid"},
		{"bad unused_days", "GET", "/v1/report?unused_days=-3", "", "", 400, "unused_days_invalid"},
		{"unknown route", "GET", "/v1/secrets", "", "", 404, "route_unknown"},
	}
	pasted := token.NewSecret()
	status, body := raw(e.requester, "POST", "/v1/requests", "application/json", `{"`+pasted+`":1}`)
	wantRefusal(t, "secret pasted as a field name", status, body, 400, "body_invalid")
	if strings.Contains(string(body), pasted[3:]) {
		t.Errorf("the error echoes a pasted secret: %s", body)
	}
	for _, c := range cases {
		secret := e.requester
		if strings.Contains(c.path, "/approve") {
			secret = e.approver
		}
		status, body := raw(secret, c.method, c.path, c.contentType, c.body)
		wantRefusal(t, c.name, status, body, c.status, c.reason)
	}
}

func TestInventoryReportAndCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	e.bootstrap()
	used, usedID := e.issue(billingReader(nil))
	_, idleID := e.issue(billingReader(map[string]any{"owner": "carol"}))
	_, writerID := e.approvedToken(writeRequest(nil))
	if r := call(t, "GET", e.gateURL+"/billing/inv", bearer(used)...); r.status != 200 {
		t.Fatal(r.status)
	}

	status, body := e.mgmt(e.requester, "GET", "/v1/tokens?owner=carol", nil)
	if list := decode[[]TokenView](t, body); status != 200 || len(list) != 1 || list[0].ID != idleID {
		t.Fatalf("owner filter: %d %s", status, body)
	}
	_, body = e.mgmt(e.requester, "GET", "/v1/tokens?service=tokengate-admin", nil)
	if list := decode[[]TokenView](t, body); len(list) < 2 {
		t.Fatalf("service filter: %s", body)
	}
	_, body = e.mgmt(e.requester, "GET", "/v1/tokens?state=active&service=billing", nil)
	if list := decode[[]TokenView](t, body); len(list) != 3 {
		t.Fatalf("state filter: %d tokens", len(list))
	}
	if strings.Contains(string(body), "tg_") || strings.Contains(string(body), `"hash"`) {
		t.Fatal("inventory exposes secrets or hashes")
	}

	// Usage is recorded off the request path, in batches.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body = e.mgmt(e.requester, "GET", "/v1/tokens/"+usedID, nil)
		if v := decode[TokenView](t, body); v.LastUsedAt != nil {
			if v.LastUsedIP != "127.0.0.1" || len(v.UsedScopes) != 1 || v.UsedScopes[0] != "billing:read" {
				t.Fatalf("usage %+v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("usage never recorded")
		}
		time.Sleep(100 * time.Millisecond)
	}

	status, body = e.mgmt(e.requester, "GET", "/v1/report", nil)
	if status != 200 {
		t.Fatalf("report: %d %s", status, body)
	}
	rep := decode[map[string][]map[string]any](t, []byte(reportArrays(t, body)))
	has := func(section, id string) bool {
		for _, item := range rep[section] {
			if item["token_id"] == id {
				return true
			}
		}
		return false
	}
	if !has("never_used", idleID) || has("never_used", usedID) {
		t.Errorf("never_used: %v", rep["never_used"])
	}
	if !has("write_without_cidr", writerID) || has("write_without_cidr", usedID) {
		t.Errorf("write_without_cidr: %v", rep["write_without_cidr"])
	}
	if !has("expiring_soon", usedID) {
		t.Errorf("expiring_soon: %v", rep["expiring_soon"])
	}
	e.advance(31 * 24 * time.Hour)
	_, body = e.mgmt(e.requester, "GET", "/v1/report", nil)
	if strings.Contains(string(body), usedID) {
		t.Errorf("expired tokens still in the report")
	}
	e.advance(-31 * 24 * time.Hour)

	status, body = e.mgmt(e.requester, "POST", "/v1/check", map[string]string{"token_id": writerID, "service": "billing", "method": "PATCH", "path": "/billing/x", "ip": "10.1.1.1"})
	if c := decode[CheckResult](t, body); status != 200 || !c.Allow {
		t.Fatalf("check allow: %d %s", status, body)
	}
	// A write scope does not cover DELETE.
	status, body = e.mgmt(e.requester, "POST", "/v1/check", map[string]string{"token_id": writerID, "service": "billing", "method": "DELETE", "path": "/billing/x", "ip": "10.1.1.1"})
	if c := decode[CheckResult](t, body); status != 200 || c.Allow || !slices.Equal(c.Reasons, []string{"scope_missing"}) {
		t.Fatalf("check DELETE with a write scope: %d %s", status, body)
	}
	_, body = e.mgmt(e.requester, "POST", "/v1/check", map[string]string{"token_id": usedID, "service": "search", "method": "POST"})
	if c := decode[CheckResult](t, body); c.Allow || len(c.Reasons) != 2 || c.PolicyRev == "" {
		t.Fatalf("check deny: %s", body)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// reportArrays keeps only the array sections of a report body.
func reportArrays(t *testing.T, body []byte) string {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatal(err)
	}
	out := map[string]json.RawMessage{}
	for k, v := range all {
		if len(v) > 0 && v[0] == '[' {
			out[k] = v
		}
	}
	return jsonOf(out)
}
