package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/tokengate/caddy-tokengate/api"
)

// openAPI checks real calls against the management API's description
// with kin-openapi's validator (openapi3filter): the document loads and
// validates as OpenAPI 3.1, every answer's status, headers, media type and
// body must be described by the operation the call matched, and every
// request the server accepted must be one the document allows.
type openAPI struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("api/openapi.json is not a valid OpenAPI document: %v", err)
	}
	// The tests' servers listen on ports chosen at run time: operations
	// are matched by method and path alone.
	doc.Servers = nil
	for _, item := range doc.Paths.Map() {
		item.Servers = nil
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &openAPI{t: t, doc: doc, router: router}
}

// check validates one call to method path (the path as sent, query
// included) and its answer r against the document.
func (o *openAPI) check(method, path string, r response) {
	o.t.Helper()
	ctx := context.Background()
	req, err := http.NewRequest(method, "http://tokengate.test"+path, bytes.NewReader(r.sent))
	if err != nil {
		o.t.Fatal(err)
	}
	if r.sent != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := o.router.FindRoute(req)
	if err != nil && r.status == http.StatusMethodNotAllowed {
		// A method the path is not served with: its 405 is described on
		// the operations the path has.
		for _, other := range []string{http.MethodGet, http.MethodPost} {
			alt := req.Clone(ctx)
			alt.Method = other
			if route, params, err = o.router.FindRoute(alt); err == nil {
				break
			}
		}
	}
	if err != nil {
		o.t.Errorf("%s %s: not in the OpenAPI document: %v", method, path, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if r.sent != nil && r.status < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			o.t.Errorf("%s %s: the server accepted a request the OpenAPI document does not allow: %v", method, path, err)
		}
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	})
	if err != nil {
		o.t.Errorf("%s %s: %d answer does not match the OpenAPI document: %v\n%s", method, path, r.status, err, r.body)
	}
}

// mgmtCall sends one management call and returns what the client saw.
func (e *env) mgmtCall(t *testing.T, secret, method, path string, body any) response {
	t.Helper()
	return callAt(t, e.mgmtURL, secret, method, path, body)
}

// callAt sends one JSON call to base (the management API or Caddy's
// admin endpoint) and returns what the client saw.
func callAt(t *testing.T, base, secret, method, path string, body any) response {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sent []byte
	if body != nil {
		sent, _ = json.Marshal(body)
		req, _ = http.NewRequest(method, base+path, bytes.NewReader(sent))
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
	return response{status: resp.StatusCode, header: resp.Header, body: out, sent: sent}
}

// TestManagementAnswersMatchOpenAPI walks the management API through a
// whole flow (request, approve, claim, list, show, check, report, rotate,
// revoke, and refusals of each kind) and checks every answer, status,
// media type and body, against the served OpenAPI description.
func TestManagementAnswersMatchOpenAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.bootstrap()
	o := loadOpenAPI(t)

	served := e.mgmtCall(t, "", "GET", "/v1/openapi.json", nil)
	if served.status != http.StatusOK || !sameDocumentBut("servers", served.body, api.OpenAPI) {
		t.Fatalf("GET /v1/openapi.json without a token: %d, or not the embedded document", served.status)
	}

	do := func(secret, method, path string, body any) response {
		t.Helper()
		r := e.mgmtCall(t, secret, method, path, body)
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
	t.Parallel()
	e := newEnv(t, envOptions{})
	o := loadOpenAPI(t)
	do := func(method, path string, body any) response {
		t.Helper()
		r := callAt(t, e.adminURL, "", method, path, body)
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
