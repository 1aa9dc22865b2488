package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokengate/caddy-tokengate/api"
)

// openAPI checks real answers against the management API's description.
type openAPI struct {
	t     *testing.T
	doc   map[string]any
	query rego.PreparedEvalQuery
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	o := &openAPI{t: t}
	if err := json.Unmarshal(api.OpenAPI, &o.doc); err != nil {
		t.Fatal(err)
	}
	var err error
	// OPA's json.match_schema, the validator the audit schema test uses.
	if o.query, err = rego.New(rego.Query("x := json.match_schema(input.body, input.schema)")).PrepareForEval(context.Background()); err != nil {
		t.Fatal(err)
	}
	return o
}

// object is v as a JSON object, following a local $ref.
func (o *openAPI) object(v any) map[string]any {
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		var cur any = o.doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		return o.object(cur)
	}
	return m
}

// check validates one answer to method path (the path as sent, matched
// against the document's templates) against the schema the document
// gives for its status and media type.
func (o *openAPI) check(method, path string, r response) {
	o.t.Helper()
	path, _, _ = strings.Cut(path, "?")
	var op map[string]any
	for tmpl, item := range o.doc["paths"].(map[string]any) {
		re := "^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		if !regexp.MustCompile(re).MatchString(path) {
			continue
		}
		ops := item.(map[string]any)
		if op = o.object(ops[strings.ToLower(method)]); op == nil {
			// A method the path is not served with: its 405 is described
			// on the operations the path has (not on its other fields,
			// such as servers).
			for _, other := range ops {
				if m := o.object(other); m["responses"] != nil {
					op = m
				}
			}
		}
	}
	if op == nil {
		o.t.Errorf("%s %s: not in the OpenAPI document", method, path)
		return
	}
	resp := o.object(op["responses"].(map[string]any)[strconv.Itoa(r.status)])
	if resp == nil {
		o.t.Errorf("%s %s: status %d not described", method, path, r.status)
		return
	}
	ct, _, _ := strings.Cut(r.header.Get("Content-Type"), ";")
	media := o.object(o.object(resp["content"])[ct])
	if media == nil {
		o.t.Errorf("%s %s: %d answered %s, not described", method, path, r.status, ct)
		return
	}
	for name := range o.object(resp["headers"]) {
		if r.header.Get(name) == "" && name != "Link" {
			o.t.Errorf("%s %s: %d without header %s", method, path, r.status, name)
		}
	}
	schema := map[string]any{"$ref": media["schema"].(map[string]any)["$ref"], "components": o.doc["components"]}
	if _, inline := media["schema"].(map[string]any)["$ref"]; !inline {
		schema = media["schema"].(map[string]any)
	}
	o.validate(fmt.Sprintf("%s %s: %d answer", method, path, r.status), r.body, schema)
}

// validate checks the JSON document raw against schema, whose $refs
// point into the components it carries.
func (o *openAPI) validate(what string, raw []byte, schema map[string]any) {
	o.t.Helper()
	var body any
	if err := json.Unmarshal(raw, &body); err != nil {
		o.t.Fatalf("%s: %v", what, err)
	}
	rs, err := o.query.Eval(context.Background(), rego.EvalInput(map[string]any{"body": body, "schema": schema}))
	if err != nil || len(rs) != 1 {
		o.t.Fatalf("validating %s: %v", what, err)
	}
	if res := rs[0].Bindings["x"].([]any); res[0] != true {
		o.t.Errorf("%s does not match the OpenAPI schema: %v\n%s", what, res[1], raw)
	}
}

// mgmtCall sends one management call and returns what the client saw.
func mgmtCall(t *testing.T, secret, method, path string, body any) response {
	t.Helper()
	return callAt(t, mgmtURL, secret, method, path, body)
}

// callAt sends one JSON call to base (the management API or Caddy's
// admin endpoint) and returns what the client saw.
func callAt(t *testing.T, base, secret, method, path string, body any) response {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		b, _ := json.Marshal(body)
		req, _ = http.NewRequest(method, base+path, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: out}
}

// TestManagementAnswersMatchOpenAPI walks the management API through a
// whole flow (request, approve, claim, list, show, check, report, rotate,
// revoke, and refusals of each kind) and checks every answer, status,
// media type and body, against the served OpenAPI description.
func TestManagementAnswersMatchOpenAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.bootstrap()
	o := loadOpenAPI(t)

	served := mgmtCall(t, "", "GET", "/v1/openapi.json", nil)
	if served.status != http.StatusOK || !sameDocumentBut("servers", served.body, api.OpenAPI) {
		t.Fatalf("GET /v1/openapi.json without a token: %d, or not the embedded document", served.status)
	}

	do := func(secret, method, path string, body any) response {
		t.Helper()
		r := mgmtCall(t, secret, method, path, body)
		o.check(method, path, r)
		return r
	}
	r := do(e.requester, "POST", "/v1/requests", writeRequest(nil))
	reqID := decode[RequestOutcome](t, r.body).Request.ID
	do(e.approver, "GET", "/v1/requests?state=pending&limit=10", nil)
	do(e.approver, "GET", "/v1/requests/"+reqID, nil)
	do(e.approver, "POST", "/v1/requests/"+reqID+"/approve", map[string]string{"reason": "ledger sync, ticket 42"})
	r = do(e.requester, "POST", "/v1/requests/"+reqID+"/claim", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("claim: %d %s", r.status, r.body)
	}
	remember(decode[RequestOutcome](t, r.body).Secret)
	tokID := decode[RequestOutcome](t, r.body).Token.ID
	do(e.requester, "POST", "/v1/requests/"+reqID+"/claim", nil) // 410, claimed once
	do(e.approver, "GET", "/v1/tokens?limit=1", nil)
	do(e.approver, "GET", "/v1/tokens/"+tokID, nil)
	do(e.approver, "GET", "/v1/report", nil)
	do(e.approver, "POST", "/v1/check", map[string]any{"token_id": tokID, "service": "billing", "method": "POST", "path": "/billing/x"})
	// Only the owner may rotate: the approver's 403 is checked too.
	do(e.approver, "POST", "/v1/tokens/"+tokID+"/rotate", map[string]string{"grace": "1m"})
	do(e.approver, "POST", "/v1/tokens/"+tokID+"/revoke", map[string]string{"reason": "rotated away"})

	do(e.approver, "GET", "/v1/tokens?state=bogus", nil)
	do(e.approver, "GET", "/v1/tokens?limit=0", nil)
	do(e.approver, "GET", "/v1/tokens/tok_nothing", nil)
	do(e.approver, "DELETE", "/v1/tokens", nil)
	do(e.requester, "POST", "/v1/requests", map[string]any{"owner": "x"})
	do("", "GET", "/v1/tokens", nil)
}

// TestAdminEndpointAnswersMatchOpenAPI: the local operator's routes on
// Caddy's admin endpoint (bootstrap, direct issue and the token routes)
// answer as the OpenAPI description's "local admin endpoint" paths say,
// refusals included.
func TestAdminEndpointAnswersMatchOpenAPI(t *testing.T) {
	newEnv(t, envOptions{})
	o := loadOpenAPI(t)
	do := func(method, path string, body any) response {
		t.Helper()
		r := callAt(t, adminURL, "", method, path, body)
		o.check(method, path, r)
		return r
	}
	want := func(what string, r response, status int, reason string) {
		t.Helper()
		var p struct{ Reason string }
		_ = json.Unmarshal(r.body, &p)
		if r.status != status || p.Reason != reason {
			t.Errorf("%s: %d %s, want %d %s", what, r.status, r.body, status, reason)
		}
	}

	r := do("POST", "/tokengate/bootstrap", map[string]string{"requester": "alice", "approver": "bob"})
	if r.status != http.StatusCreated {
		t.Fatalf("bootstrap: %d %s", r.status, r.body)
	}
	for _, tok := range decode[BootstrapResult](t, r.body).Tokens {
		remember(tok.Secret)
	}
	want("second bootstrap", do("POST", "/tokengate/bootstrap", map[string]string{"requester": "carol", "approver": "dave"}), http.StatusConflict, "already_bootstrapped")
	want("bootstrap with an unknown field", do("POST", "/tokengate/bootstrap", map[string]any{"requester": "carol", "approver": "dave", "admin": true}), http.StatusBadRequest, "body_invalid")

	r = do("POST", "/tokengate/tokens", billingReader(nil))
	if r.status != http.StatusCreated {
		t.Fatalf("issue: %d %s", r.status, r.body)
	}
	issued := decode[IssuedToken](t, r.body)
	remember(issued.Secret)
	id := issued.Token.ID
	want("issue beyond the local operator's bounds", do("POST", "/tokengate/tokens", billingReader(map[string]any{"ttl": "48h"})), http.StatusForbidden, "local_operator_bounds")
	want("issue without services", do("POST", "/tokengate/tokens", billingReader(map[string]any{"services": []string{}})), http.StatusBadRequest, "service_invalid")

	do("GET", "/tokengate/tokens?limit=1", nil)
	do("GET", "/tokengate/tokens/"+id, nil)
	do("GET", "/tokengate/report", nil)
	do("POST", "/tokengate/check", map[string]any{"token_id": id, "service": "billing", "method": "GET", "path": "/billing/x"})
	r = do("POST", "/tokengate/tokens/"+id+"/rotate", map[string]string{"grace": "1m"})
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	remember(decode[IssuedToken](t, r.body).Secret)
	if r := do("POST", "/tokengate/tokens/"+id+"/revoke", map[string]string{"reason": "done"}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}

	want("unknown state", do("GET", "/tokengate/tokens?state=bogus", nil), http.StatusBadRequest, "state_invalid")
	want("unknown token", do("GET", "/tokengate/tokens/tok_nothing", nil), http.StatusNotFound, "token_not_found")
	if r := do("DELETE", "/tokengate/tokens", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /tokengate/tokens: %d %s", r.status, r.body)
	}
	if r := do("PUT", "/tokengate/bootstrap", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT /tokengate/bootstrap: %d %s", r.status, r.body)
	}
}
