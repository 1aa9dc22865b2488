package caddymodule

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/store"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// LocalOperator is the principal behind every call on Caddy's admin
// endpoint: whoever can reach that endpoint operates this node.
const LocalOperator = "local-operator"

// adminAPI serves the local operator's token routes on Caddy's admin
// endpoint, under /tokengate/:
//
//	POST /tokengate/tokens               issue (body: lifecycle.Spec)
//	GET  /tokengate/tokens               list (?owner= &service= &state=)
//	GET  /tokengate/tokens/{id}          show
//	POST /tokengate/tokens/{id}/revoke   body {"reason"}
//	POST /tokengate/tokens/{id}/rotate   body {"grace"}
type adminAPI struct {
	mux    *http.ServeMux
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.tokengate",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision builds the routes. The app is looked up per call: the admin
// endpoint is provisioned before the apps of a new config exist.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("POST /tokengate/tokens", a.withApp(a.issue))
	a.mux.HandleFunc("GET /tokengate/tokens", a.withApp(a.list))
	a.mux.HandleFunc("GET /tokengate/tokens/{id}", a.withApp(a.show))
	a.mux.HandleFunc("POST /tokengate/tokens/{id}/revoke", a.withApp(a.revoke))
	a.mux.HandleFunc("POST /tokengate/tokens/{id}/rotate", a.withApp(a.rotate))
	a.mux.HandleFunc("/tokengate/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, APIError{Error: "Not Found", Reason: "route_unknown"})
	})
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

type appHandler func(app *App, w http.ResponseWriter, r *http.Request)

func (a *adminAPI) withApp(h appHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		app := live.current()
		if app == nil {
			writeJSON(w, http.StatusServiceUnavailable, APIError{Error: "Service Unavailable", Reason: "tokengate_not_running",
				Message: "the running config has no tokengate app"})
			return
		}
		h(app, w, r)
	}
}

func (a *adminAPI) fail(w http.ResponseWriter, err error) {
	if _, technical := writeError(w, err); technical {
		a.logger.Error("token management failed", zap.Error(err))
	}
}

func (a *adminAPI) issue(app *App, w http.ResponseWriter, r *http.Request) {
	var spec lifecycle.Spec
	if err := decodeBody(r, &spec); err != nil {
		a.fail(w, err)
		return
	}
	secret, tok, err := app.lifecycle.Issue(r.Context(), LocalOperator, spec)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, IssuedToken{Secret: secret, Token: viewOf(tok, app.now())})
}

func (a *adminAPI) list(app *App, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	toks, err := app.lifecycle.List(r.Context(), store.Filter{Owner: q.Get("owner"), Service: q.Get("service")}, q.Get("state"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewsOf(toks, app.now()))
}

func (a *adminAPI) show(app *App, w http.ResponseWriter, r *http.Request) {
	tok, err := app.lifecycle.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(tok, app.now()))
}

func (a *adminAPI) revoke(app *App, w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeBody(r, &body); err != nil {
		a.fail(w, err)
		return
	}
	tok, err := app.lifecycle.Revoke(r.Context(), LocalOperator, r.PathValue("id"), body.Reason)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(tok, app.now()))
}

func (a *adminAPI) rotate(app *App, w http.ResponseWriter, r *http.Request) {
	var body struct {
		Grace string `json:"grace"`
	}
	if err := decodeBody(r, &body); err != nil {
		a.fail(w, err)
		return
	}
	grace := lifecycle.DefaultGrace
	if body.Grace != "" {
		var err error
		if grace, err = time.ParseDuration(body.Grace); err != nil {
			a.fail(w, &lifecycle.Error{Status: http.StatusBadRequest, Code: "grace_invalid", Msg: "grace is not a duration such as 10m"})
			return
		}
	}
	secret, tok, err := app.lifecycle.Rotate(r.Context(), LocalOperator, r.PathValue("id"), grace)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, IssuedToken{Secret: secret, Token: viewOf(tok, app.now())})
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
