package caddymodule

import (
	"net/http"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/signin"
)

// signInPath is where `caddy tokengate login` learns how people sign in
// to this management API.
const signInPath = "/v1/auth/oidc"

// serveSignInConfig answers GET /v1/auth/oidc with the oidc issuer, the
// client id its ID tokens are issued to (the audience the verifier
// checks) and the scopes to ask for. It needs no credential: it is what a
// person needs before they have one, and it names nothing secret, only
// what the IdP's own discovery document tells anyone.
func (h *AdminHandler) serveSignInConfig(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not served here; Allow lists the methods that are")
		return
	}
	app := h.auth.app
	if app == nil || app.OIDC == nil {
		writeProblem(w, http.StatusNotFound, "signin_not_configured", "this gateway names no oidc issuer in its tokengate options: people cannot sign in, use a management token")
		return
	}
	writeJSON(w, http.StatusOK, api.SignInConfig{Issuer: app.OIDC.Issuer, ClientID: app.OIDC.Audience, Scopes: signin.DefaultScopes})
}
