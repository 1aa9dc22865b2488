package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
)

func init() {
	caddy.RegisterModule(AdminHandler{})
	httpcaddyfile.RegisterHandlerDirective("tokengate_admin", parseAdminHandler)
	httpcaddyfile.RegisterDirectiveOrder("tokengate_admin", httpcaddyfile.Before, "respond")
}

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
//	POST /v1/token                      token exchange for workloads (RFC 8693, no management credential)
//	GET  /v1/auth/oidc                  how people sign in: issuer, client id, scopes (no credential)
//	GET  /v1/openapi.json               the API's description (no credential; internal/mgmtapi/openapi.go)
//	POST /v1/leaks                      secrets found in the wild, revoked (internal/mgmtapi/leaks.go; action report_leak)
//	POST /v1/leaks/github               GitHub's secret scanning partner alerts (signed; no credential)
//	/console/                           the web console (internal/console, mounted by internal/mgmtapi/site.go)
//	GET  /healthz, GET /readyz          liveness and readiness probes (no credential; health.go)
//
// Callers authenticate with management tokens: tokens bound to service
// tokengate-admin, checked on the gateway's own request path (format,
// expiry, revocation, CIDRs), with one gateway audit line per call. When
// the app has an oidc issuer, people also authenticate with their ID
// tokens as `Authorization: Bearer`. What each caller may do is decided
// by policies/admin.rego. Every refusal, a bad credential's 401 included,
// is RFC 9457 problem details with a reason code. The routes live in
// internal/mgmtapi; this is the adapter that serves them in Caddy.
type AdminHandler struct {
	// Header carrying the management token. Default Authorization.
	Header string `json:"header,omitempty"`

	app  *App
	site *mgmtapi.Site
}

// CaddyModule returns the Caddy module information.
func (AdminHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tokengate_admin",
		New: func() caddy.Module { return new(AdminHandler) },
	}
}

// Provision finds the app and builds the routes behind one authenticator:
// a person's ID token or a management token, by the credential's kind.
func (h *AdminHandler) Provision(ctx caddy.Context) error {
	h.Header = mgmtapi.CredentialHeader(h.Header)
	app, err := ctx.App("tokengate")
	if err != nil {
		return err
	}
	h.app = app.(*App)
	c, err := h.app.parts.Console()
	if err != nil {
		return err
	}
	logger := ctx.Logger()
	h.site, err = mgmtapi.NewSite(mgmtapi.SiteOptions{
		Node:     func() *mgmtapi.Node { return h.app.node },
		Header:   h.Header,
		Token:    h.app.managementToken(h.Header, logger),
		Host:     caddyHost{},
		Observe:  func(line *audit.Call) { metrics.Decision(line.Service, line.Decision, line.Reasons, line.Cache) },
		Logger:   logger,
		Console:  c,
		SentPath: sentPath,
	})
	return err
}

// ServeHTTP serves the probes without a credential (they hold no data),
// and everything else through the management API's site.
func (h *AdminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if h.serveProbe(w, r) {
		return nil
	}
	return h.site.ServeHTTP(w, r)
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
