package mgmtapi

import (
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"net/http"

	"github.com/tokengate/caddy-tokengate/internal/signin"
)

// Endpoints beside the management API: they take no credential (or a
// signature of their own, checked by the leak intake), so the Server hands
// them the request before its authentication. The sign-in configuration
// and GitHub's leak alerts are mounted by New, with Mount. The token
// exchange is not beside the API: its subject token is a credential, and
// its Authenticator (Workload) yields its actor.

// BesideFunc serves one endpoint beside the management API.
type BesideFunc func(node *Node, host Host, w http.ResponseWriter, r *http.Request)

// Mount serves h at path (an exact path) beside the management API.
func (s *Server) Mount(path string, h BesideFunc) {
	if s.beside == nil {
		s.beside = map[string]BesideFunc{}
	}
	s.beside[path] = h
}

// SignInPath is where `caddy tokengate login` learns how people sign in
// to this management API.
const SignInPath = "/v1/auth/oidc"

// serveSignInConfig answers GET /v1/auth/oidc with the oidc issuer, the
// client id its ID tokens are issued to (the audience the verifier
// checks) and the scopes to ask for. It needs no credential: it is what a
// person needs before they have one, and it names nothing secret, only
// what the IdP's own discovery document tells anyone.
func serveSignInConfig(node *Node, _ Host, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		WriteMethodNotAllowed(w, r)
		return
	}
	if node.SignIn == nil {
		WriteProblem(w, reason.New(reason.SigninNotConfigured, "this gateway names no oidc issuer in its tokengate options: people cannot sign in, use a management token"))
		return
	}
	out := *node.SignIn
	out.Scopes = signin.DefaultScopes
	WriteJSON(w, http.StatusOK, out)
}
