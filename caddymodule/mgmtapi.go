package caddymodule

import (
	"github.com/tokengate/caddy-tokengate/internal/console"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/store"
)

func init() {
	caddy.RegisterModule(AdminHandler{})
	httpcaddyfile.RegisterHandlerDirective("tokengate_admin", parseAdminHandler)
	httpcaddyfile.RegisterDirectiveOrder("tokengate_admin", httpcaddyfile.Before, "respond")
}

// tokenVar is the request variable through which the tokengate handler
// hands the authenticated token to what follows it. Clients cannot set
// request variables.
const tokenVar = "tokengate.token"

// AdminHandler is the management API, `http.handlers.tokengate_admin`. It
// is a terminal handler serving /v1/ with JSON:
//
//	POST /v1/requests                   ask for a token (201 with the secret if auto-approved, else 202)
//	GET  /v1/requests?status=pending    list requests
//	GET  /v1/requests/{id}              show one
//	POST /v1/requests/{id}/approve      approve (not by the requester; no secret in the answer)
//	POST /v1/requests/{id}/deny         deny
//	POST /v1/requests/{id}/claim        the requester takes the secret, once (410 after)
//	GET  /v1/tokens[?owner=&service=&state=], GET /v1/tokens/{id}
//	POST /v1/tokens/{id}/rotate, POST /v1/tokens/{id}/revoke
//	GET  /v1/report[?unused_days=]
//	POST /v1/check                      dry-run a gateway decision
//	POST /v1/token                      token exchange for workloads (RFC 8693, exchange.go)
//	POST /v1/leaks                      secrets found in the wild, revoked (leaks.go; action report_leak)
//	POST /v1/leaks/github               GitHub's secret scanning partner alerts (signed; no credential)
//	GET  /v1/auth/oidc                  how people sign in: issuer, client id, scopes (no credential; signin.go)
//	GET  /healthz, GET /readyz          liveness and readiness probes (no credential; health.go)
//
// Callers authenticate with management tokens: tokens bound to service
// tokengate-admin, checked on the gateway's own request path (format,
// expiry, revocation, CIDRs), with one gateway audit line per call. When
// the app has an oidc issuer, people also authenticate with their ID
// tokens as `Authorization: Bearer` (mgmtauth.go). What each caller may do
// is decided by policies/admin.rego. Every refusal, a bad credential's 401
// included, is RFC 9457 problem details with a reason code.
//
// Caddyfile:
//
//	tokengate_admin {
//		header <name>   # default Authorization (Bearer)
//	}
type AdminHandler struct {
	// Header carrying the management token. Default Authorization.
	Header string `json:"header,omitempty"`

	auth    Handler
	mux     *http.ServeMux
	openAPI *openAPIDocument
	console *console.Console // nil without oidc
}

// CaddyModule returns the Caddy module information.
func (AdminHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tokengate_admin",
		New: func() caddy.Module { return new(AdminHandler) },
	}
}

// Provision sets up authentication and the routes.
func (h *AdminHandler) Provision(ctx caddy.Context) error {
	h.auth = Handler{Service: manage.ManagementService, Header: h.Header, problems: true}
	if err := h.auth.Provision(ctx); err != nil {
		return err
	}
	rt := routes{logger: ctx.Logger(), resolve: h.caller}
	h.mux = http.NewServeMux()
	rt.requestRoutes(h.mux, "/v1")
	rt.handle(h.mux, "POST "+leaksPath, reportLeaks)
	rt.tokenRoutes(h.mux, "/v1")
	h.mux.HandleFunc("/", unknownRoute(h.mux, "/"))
	var err error
	if h.openAPI, err = newOpenAPIDocument(); err != nil {
		return err
	}
	h.console, err = h.auth.app.newConsole()
	return err
}

// caller turns the token the tokengate handler authenticated into the
// principal: whoever holds it (held_by, the verified principal that
// claimed or received its secret), compared across all of that person's
// tokens. Never its owner, which is only a name typed into a request.
func (h *AdminHandler) caller(w http.ResponseWriter, r *http.Request) (caller, bool) {
	if p, ok := caddyhttp.GetVar(r.Context(), personVar).(*manage.Principal); ok {
		return caller{app: h.auth.app, principal: *p}, true
	}
	tok, ok := caddyhttp.GetVar(r.Context(), tokenVar).(*store.Token)
	if !ok {
		// Unreachable: auth only calls the mux after an allow.
		writeProblem(w, http.StatusUnauthorized, "token_missing", "")
		return caller{}, false
	}
	return caller{app: h.auth.app, principal: managementTokenPrincipal(tok)}, true
}

// managementTokenPrincipal is who acts with a management token: its
// holder (manage.HolderOf). For a token stored before holders were
// recorded that is who created it, or for a bootstrap token its owner, the
// person bootstrap named; an owner typed into a request never counts.
func managementTokenPrincipal(tok *store.Token) manage.Principal {
	// The holder's groups recorded at their claim: the rules about a
	// person apply whichever of their credentials they call with.
	return manage.Principal{Name: manage.HolderOf(tok), Kind: manage.ManagementTokenKind, TokenID: tok.ID, Scopes: tok.Scopes, Groups: tok.HolderGroups}
}

// ServeHTTP authenticates the management token, then serves the API. The
// API's description is served without a credential: it holds no data, and
// clients and linters read it before they have a token.
func (h *AdminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	// A workload's token exchange carries its own credential, the subject
	// token, and answers as OAuth clients expect.
	if r.URL.Path == exchangePath {
		h.serveExchange(w, r)
		return nil
	}
	// The console signs people in with its own session cookie and
	// carries out their actions through the same management service.
	if consolePath(r) {
		h.serveConsole(w, r)
		return nil
	}
	if h.serveProbe(w, r) {
		return nil
	}
	if h.serveSignedLeaks(w, r) {
		return nil
	}
	if r.URL.Path == signInPath {
		h.serveSignInConfig(w, r)
		return nil
	}
	if r.URL.Path == openAPIPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		h.openAPI.serve(w, r)
		return nil
	}
	if raw, ok := h.personCredential(r); ok {
		h.servePerson(w, r, raw)
		return nil
	}
	return h.auth.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		h.mux.ServeHTTP(w, r)
		return nil
	}))
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (h *AdminHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "header":
			if !d.AllArgs(&h.Header) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

func parseAdminHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(AdminHandler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*AdminHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*AdminHandler)(nil)
	_ caddyfile.Unmarshaler       = (*AdminHandler)(nil)
)
