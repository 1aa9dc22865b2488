package caddymodule

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

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
	a.api = mgmtapi.NewLocal(func() *mgmtapi.Node {
		if app := currentApp(); app != nil {
			return app.node
		}
		return nil
	}, caddyHost{}, ctx.Logger(a))
	return nil
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: mgmtapi.LocalPrefix + "/",
		Handler: caddy.AdminHandlerFunc(a.api.ServeHTTP),
	}}
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
