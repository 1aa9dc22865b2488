package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// The wire values of RFC 8693 the exchange tests send.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
	exchangePath       = "/v1/token"
	formMediaType      = "application/x-www-form-urlencoded"
)

// exchangeAnswer is what a workload saw from POST /v1/token.
type exchangeAnswer struct {
	response
	ok  api.TokenExchangeResult
	err api.OAuthError
}

func (e *env) exchange(t *testing.T, o *openAPI, form url.Values) exchangeAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.mgmtURL+exchangePath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", formMediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := exchangeAnswer{response: response{status: resp.StatusCode, header: resp.Header, body: body}}
	if o != nil {
		o.check(http.MethodPost, exchangePath, a.response)
	}
	if a.status == http.StatusOK {
		_ = json.Unmarshal(body, &a.ok)
		remember(a.ok.AccessToken)
	} else {
		_ = json.Unmarshal(body, &a.err)
		a.reason = a.err.Reason
	}
	return a
}

func exchangeForm(subject, scope, audience string) url.Values {
	return url.Values{
		"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {tokenTypeJWT},
		"scope": {scope}, "audience": {audience},
	}
}

// exchangeDirectory lets octo/app's main branch read or write billing,
// and its release branch read it for five minutes at most; nothing else.
const exchangeDirectory = `{
  "groups": {}, "services": {}, "integrations": {},
  "workloads": [
    {"name": "octo-app-main", "issuer": "github",
     "claims": {"repository": "octo/app", "ref": "refs/heads/main"},
     "services": ["billing"], "scopes": ["billing:write"]},
    {"name": "octo-app-release", "issuer": "github",
     "claims": {"repository": "octo/app", "ref": "refs/heads/release"},
     "services": ["billing"], "scopes": ["billing:read"], "max_ttl_seconds": 300}
  ],
  "limits": {"max_services": 3}
}`

const gatewayAudience = "https://gw.tokengate.test"

// TestTokenExchangeEndToEnd: a CI job's OIDC token from a real OpenID
// provider, exchanged through real Caddy for a token the directory grants,
// used on a real upstream; refusals for what the policy does not grant and
// for subject tokens that are expired, for another audience or from an
// issuer nobody configured; the audit trail and the inventory.
func TestTokenExchangeEndToEnd(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	stranger := oidcop.Start(t, oidcop.Options{})
	dir := copyPolicies(t, map[string]string{"tokengate/directory/data.json": exchangeDirectory})
	e := newEnv(t, envOptions{policyDir: dir, decisionCache: 1000,
		appOptions: "workload github " + op.Issuer() + " {\n\t\t\taudience " + gatewayAudience + "\n\t\t}"})
	e.bootstrap()
	o := loadOpenAPI(t)

	// The workload's name: its issuer's configured name before its subject.
	const sub = "repo:octo/app:ref:refs/heads/main"
	const principal = "workload:github:" + sub
	job := map[string]any{"sub": sub, "repository": "octo/app", "ref": "refs/heads/main", "workflow": "deploy", "run_id": "77"}
	subject := op.WorkloadToken(t, gatewayAudience, job)
	subjects := []string{subject}

	got := e.exchange(t, o, exchangeForm(subject, "billing:read", "billing"))
	if got.status != http.StatusOK || got.ok.TokenType != "Bearer" || got.ok.IssuedTokenType != tokenTypeAccess ||
		got.ok.ExpiresIn != 900 || got.ok.Scope != "billing:read" || !strings.HasPrefix(got.ok.AccessToken, "tg_") {
		t.Fatalf("exchange: %d %s", got.status, got.body)
	}
	if got.header.Get("Cache-Control") != "no-store" || got.header.Get("Pragma") != "no-cache" {
		t.Errorf("exchange answer may be cached: %v", got.header)
	}
	secret, tokID := got.ok.AccessToken, got.ok.TokenID

	// The token works on the gateway, within its scope only.
	if r := call(t, "GET", e.gateURL+"/billing/exchanged-1", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("call with the exchanged token: %d %s", r.status, r.body)
	}
	if up := e.upstream.received("/billing/exchanged-1"); len(up) != 1 || up[0].Header.Get("X-Tokengate-Owner") != principal || up[0].Header.Get("Authorization") != "" {
		t.Fatalf("upstream saw %v", up)
	}
	if r := call(t, "POST", e.gateURL+"/billing/exchanged-2", bearer(secret)...); r.status != http.StatusForbidden || r.reason != "scope_missing" {
		t.Errorf("write with a read token: %d %s", r.status, r.reason)
	}

	// The inventory shows it, held by the workload.
	status, body := e.mgmt(e.approver, "GET", "/v1/tokens/"+tokID, nil)
	view := decode[TokenView](t, body)
	if status != 200 || view.HeldBy != principal || view.Owner != principal || view.CreatedBy != principal ||
		view.ExpiresAt.Sub(view.NotBefore) != 15*time.Minute || view.State != "active" {
		t.Fatalf("inventory: %d %s", status, body)
	}
	status, body = e.mgmt(e.approver, "GET", "/v1/tokens?owner="+url.QueryEscape(principal), nil)
	if list := decode[[]TokenView](t, body); status != 200 || len(list) != 1 || list[0].ID != tokID || list[0].HeldBy != principal {
		t.Fatalf("inventory by owner: %d %s", status, body)
	}

	// The subject token is spent: exchanged again, even on another
	// node (the store remembers it), it gets nothing.
	if r := e.exchange(t, o, exchangeForm(subject, "billing:read", "billing")); r.status != http.StatusBadRequest || r.err.Error != "invalid_request" || r.reason != "subject_token_used" {
		t.Errorf("second exchange of one subject token: %d %s", r.status, r.body)
	}

	// An entry with a shorter life gets it: the policy's decision bounds
	// the 15 minutes.
	release := map[string]any{"sub": "repo:octo/app:ref:refs/heads/release", "repository": "octo/app", "ref": "refs/heads/release"}
	short := e.exchange(t, o, exchangeForm(op.WorkloadToken(t, gatewayAudience, release), "billing:read", "billing"))
	if short.status != http.StatusOK || short.ok.ExpiresIn != 300 {
		t.Fatalf("exchange for the release branch: %d %s", short.status, short.body)
	}
	status, body = e.mgmt(e.approver, "GET", "/v1/tokens/"+short.ok.TokenID, nil)
	if view := decode[TokenView](t, body); status != 200 || view.ExpiresAt.Sub(view.NotBefore) != 5*time.Minute {
		t.Fatalf("inventory of the release token: %d %s", status, body)
	}

	// What the policy does not grant.
	refusals := []struct {
		what           string
		subject        string
		scope, service string
		code, reason   string
	}{
		{"destructive scope", subject, "billing:delete", "billing", "invalid_scope", "workload_scope_destructive"},
		{"a service the entry lacks", subject, "search:read", "search", "invalid_scope", "workload_grant_exceeded"},
		{"management scope", subject, "tokens:read", manage.ManagementService, "invalid_scope", "workload_management_scope"},
		{"a repository with no directory entry", op.WorkloadToken(t, gatewayAudience, map[string]any{
			"sub": "repo:evil/fork:ref:refs/heads/main", "repository": "evil/fork", "ref": "refs/heads/main"}), "billing:read", "billing", "invalid_scope", "workload_not_in_directory"},
		{"another audience", op.WorkloadToken(t, "https://elsewhere.example", job), "billing:read", "billing", "invalid_request", "id_token_audience"},
		{"an issuer nobody configured", stranger.WorkloadToken(t, gatewayAudience, job), "billing:read", "billing", "invalid_request", "id_token_issuer"},
		{"not a JWT", "not-a-jwt", "billing:read", "billing", "invalid_request", "id_token_malformed"},
	}
	for _, c := range refusals {
		subjects = append(subjects, c.subject)
		r := e.exchange(t, o, exchangeForm(c.subject, c.scope, c.service))
		// A policy refusal answers with its first reason (they are sorted)
		// and lists them all in the description; other refusals have one.
		reasons := []string{r.err.Reason}
		if _, list, ok := strings.Cut(r.err.Description, "["); ok {
			reasons = strings.Fields(strings.TrimSuffix(list, "]"))
		}
		if r.status != http.StatusBadRequest || r.err.Error != c.code || reasons[0] != r.err.Reason || !slices.Contains(reasons, c.reason) {
			t.Errorf("%s: %d %s, want 400 %s %s", c.what, r.status, r.body, c.code, c.reason)
		}
	}

	// A subject token past its expiry (the OP's live five minutes).
	e.advance(6 * time.Minute)
	if r := e.exchange(t, o, exchangeForm(subject, "billing:read", "billing")); r.status != http.StatusBadRequest || r.err.Error != "invalid_request" || r.reason != "id_token_expired" {
		t.Errorf("expired subject token: %d %s", r.status, r.body)
	}

	// No refusal issued a token, and each attempt left an audit line.
	status, body = e.mgmt(e.approver, "GET", "/v1/tokens?service=billing", nil)
	if list := decode[[]TokenView](t, body); status != 200 || len(list) != 2 {
		t.Errorf("tokens after the refusals: %d %s", status, body)
	}
	var success []map[string]any
	refused := map[string]bool{}
	for _, l := range e.auditLines() {
		if l["msg"] != "token.exchanged" {
			continue
		}
		// Each attempt's line names the HTTP request it answered.
		if id, _ := l["request_id"].(string); id == "" {
			t.Errorf("token.exchanged line without the request's id: %v", l)
		}
		if l["outcome"] == "success" && l["token_id"] == tokID {
			success = append(success, l)
		}
		for _, code := range anyStrings(l["reasons"]) {
			refused[code] = true
		}
	}
	if len(success) != 1 {
		t.Fatalf("%d token.exchanged success lines for %s, want 1", len(success), tokID)
	}
	w, _ := success[0]["workload"].(map[string]any)
	claims, _ := w["claims"].(map[string]any)
	if success[0]["actor"] != principal || success[0]["held_by"] != principal ||
		w["issuer"] != "github" || claims["repository"] != "octo/app" || claims["ref"] != "refs/heads/main" || claims["workflow"] != "deploy" {
		t.Errorf("token.exchanged line: %v", success[0])
	}
	want := []string{"id_token_expired"}
	for _, c := range refusals {
		want = append(want, c.reason)
	}
	for _, code := range want {
		if !refused[code] {
			t.Errorf("no refused token.exchanged line with reason %s", code)
		}
	}
	// No subject token in any log (the secret is checked by the env).
	var logs strings.Builder
	for _, name := range []string{"audit.log", "caddy.log", "access.log"} {
		b, _ := os.ReadFile(filepath.Join(e.dir, name))
		logs.Write(b)
	}
	for _, s := range subjects {
		if sig := s[strings.LastIndex(s, ".")+1:]; len(sig) > 16 && strings.Contains(logs.String(), sig) {
			t.Errorf("a subject token is in the logs")
		}
	}
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Without a workload issuer, the grant is not served, and GET is not a
// way in; both are audited.
func TestTokenExchangeNotConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	o := loadOpenAPI(t)
	r := e.exchange(t, o, exchangeForm("eyJ.SUBJECT-TOKEN.sig", "billing:read", "billing"))
	if r.status != http.StatusBadRequest || r.err.Error != "unsupported_grant_type" || r.reason != "exchange_not_configured" {
		t.Fatalf("exchange without workloads: %d %s", r.status, r.body)
	}
	get := e.mgmtCall(t, "", "GET", exchangePath, nil)
	o.check("GET", exchangePath, get)
	if get.status != http.StatusMethodNotAllowed || get.header.Get("Allow") != "POST" {
		t.Fatalf("GET %s: %d %v", exchangePath, get.status, get.header)
	}
	var reasons []string
	for _, l := range e.auditLines() {
		if l["msg"] == "token.exchanged" && l["outcome"] == "refused" {
			reasons = append(reasons, anyStrings(l["reasons"])...)
		}
	}
	if !slices.Equal(reasons, []string{"exchange_not_configured", "method_not_allowed"}) {
		t.Fatalf("refused token.exchanged reasons %v", reasons)
	}
}

// While the workload issuer cannot be reached, no subject token is taken
// (503, fail closed, audited); once it is back, exchanges work without a
// reload.
func TestTokenExchangeIssuerDown(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	subject := op.WorkloadToken(t, gatewayAudience, map[string]any{"sub": "repo:octo/app:ref:refs/heads/main", "repository": "octo/app", "ref": "refs/heads/main"})
	op.SetDown(true)
	dir := copyPolicies(t, map[string]string{"tokengate/directory/data.json": exchangeDirectory})
	e := newEnv(t, envOptions{policyDir: dir,
		appOptions: "workload github " + op.Issuer() + " {\n\t\t\taudience " + gatewayAudience + "\n\t\t}"})
	o := loadOpenAPI(t)

	r := e.exchange(t, o, exchangeForm(subject, "billing:read", "billing"))
	if r.status != http.StatusServiceUnavailable || r.err.Error != "temporarily_unavailable" || r.reason != "issuer_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("exchange while the issuer is down: %d %v %s", r.status, r.header, r.body)
	}
	var audited bool
	for _, l := range e.auditLines() {
		audited = audited || (l["msg"] == "token.exchanged" && slices.Contains(anyStrings(l["reasons"]), "issuer_unavailable"))
	}
	if !audited {
		t.Error("no token.exchanged line for the refusal")
	}

	op.SetDown(false)
	e.advance(10 * time.Second) // past the verifier's pause between discovery attempts
	if r := e.exchange(t, o, exchangeForm(subject, "billing:read", "billing")); r.status != http.StatusOK {
		t.Fatalf("exchange once the issuer is back: %d %s", r.status, r.body)
	}
}
