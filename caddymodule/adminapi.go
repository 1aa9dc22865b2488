package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// LocalOperator is the principal behind every call on Caddy's admin
// endpoint: whoever can reach that endpoint operates this node.
const LocalOperator = manage.LocalOperator

// adminAPI serves the local operator's routes (internal/mgmtapi's
// local.go) on Caddy's admin endpoint, under /tokengate/.
type adminAPI struct {
	api *mgmtapi.Server
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
	a.api = mgmtapi.New(mgmtapi.Options{
		Node: func() *mgmtapi.Node {
			if app := currentApp(); app != nil {
				return app.node
			}
			return nil
		},
		Auth:   mgmtapi.LocalOperator{},
		Host:   caddyHost{},
		Prefix: "/tokengate",
		Local:  true,
		Logger: ctx.Logger(a),
	})
	return nil
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/tokengate/",
		Handler: caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return a.api.ServeHTTP(w, r)
		}),
	}}
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
