package caddymodule

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// LocalOperator is the principal behind every call on Caddy's admin
// endpoint: whoever can reach that endpoint operates this node.
const LocalOperator = manage.LocalOperator

// adminAPI serves the local operator's routes on Caddy's admin endpoint,
// under /tokengate/. Whoever reaches that endpoint is the principal
// "local-operator", whose powers admin.rego bounds (by default: issue and
// rotate read-only tokens of at most an hour, revoke anything, read).
//
//	POST /tokengate/bootstrap            first two management tokens
//	POST /tokengate/tokens               issue (body: api.TokenSpec)
//	GET  /tokengate/tokens               list (?owner= &service= &state=)
//	GET  /tokengate/tokens/{id}          show
//	POST /tokengate/tokens/{id}/revoke   body {"reason"}
//	POST /tokengate/tokens/{id}/rotate   body {"grace"}
//	GET  /tokengate/report               hygiene report (?unused_days=)
//	POST /tokengate/check                dry-run a gateway decision
type adminAPI struct {
	mux *http.ServeMux
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.tokengate",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// localOperator is the principal of every admin endpoint call.
var localOperator = manage.Principal{Name: LocalOperator, Local: true}

// Provision builds the routes. The app is looked up per call: the admin
// endpoint is provisioned before the apps of a new config exist.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	rt := routes{logger: ctx.Logger(a), resolve: func(w http.ResponseWriter, r *http.Request) (caller, bool) {
		app := currentApp()
		if app == nil {
			writeProblem(w, http.StatusServiceUnavailable, "tokengate_not_running", "the running config has no tokengate app")
			return caller{}, false
		}
		return caller{app: app, principal: localOperator}, true
	}}
	a.mux = http.NewServeMux()
	rt.handle(a.mux, "POST /tokengate/tokens", issueToken)
	rt.handle(a.mux, "POST /tokengate/bootstrap", bootstrap)
	rt.handle(a.mux, "GET /tokengate/backup", backupStore)
	rt.handle(a.mux, "POST /tokengate/break-glass", startBreakGlass)
	rt.handle(a.mux, "POST /tokengate/break-glass/{id}/confirm", confirmBreakGlass)
	rt.handle(a.mux, "POST /tokengate/leaks", reportLeaks)
	rt.tokenRoutes(a.mux, "/tokengate")
	return nil
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/tokengate/",
		Handler: caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			a.mux.ServeHTTP(w, r)
			return nil
		}),
	}}
}

func issueToken(c caller, w http.ResponseWriter, r *http.Request) error {
	var spec api.TokenSpec
	if err := decodeBody(r, &spec); err != nil {
		return err
	}
	secret, tok, err := c.app.manage.Issue(r.Context(), c.principal, lifecycle.Spec(spec))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.IssuedToken{Secret: secret, Token: viewOf(tok, c.app.now())})
	return nil
}

func bootstrap(c caller, w http.ResponseWriter, r *http.Request) error {
	var body api.BootstrapRequest
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	ttl, err := bootstrapTTL(c, body.TTL)
	if err != nil {
		return err
	}
	secrets, toks, err := c.app.manage.Bootstrap(r.Context(), c.principal, body.Requester, body.Approver, ttl)
	if err != nil {
		return err
	}
	var out api.BootstrapResult
	for _, t := range toks {
		out.Tokens = append(out.Tokens, api.IssuedToken{Secret: secrets[t.ID], Token: viewOf(t, c.app.now())})
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// bootstrapTTL is the lifetime asked for bootstrap tokens: max_ttl when
// none is given.
func bootstrapTTL(c caller, asked string) (time.Duration, error) {
	if asked == "" {
		return time.Duration(c.app.MaxTTL), nil
	}
	d, err := caddy.ParseDuration(asked)
	if err != nil || d <= 0 {
		return 0, &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "ttl_invalid", Msg: "ttl is not a positive duration such as 24h or 30d"}
	}
	return d, nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
