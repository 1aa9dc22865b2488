package mgmtapi

import (
	"net/http"
	"strings"

	"github.com/tokengate/caddy-tokengate/internal/console"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// Site is the management API as one site serves it (the tokengate_admin
// handler): the web console under /console/, the API's description at
// /v1/openapi.json, and the routes. The console signs people in with its
// own session cookie and carries out their actions through the same
// management service; the description holds no data, and clients and
// linters read it before they have a token, so neither takes a
// management credential.
type Site struct {
	api     *Server
	console *console.Console
	sent    func(*http.Request) string
	openAPI openAPIDocument
}

// NewSite serves api with the console c (nil answers 404); sentPath is
// the path of a request as its client sent it, before a rewrite in front.
func NewSite(api *Server, c *console.Console, sentPath func(*http.Request) string) (*Site, error) {
	doc, err := newOpenAPIDocument()
	if err != nil {
		return nil, err
	}
	return &Site{api: api, console: c, sent: sentPath, openAPI: doc}, nil
}

// ServeHTTP serves r; the error is for the server in front, as
// Server.ServeHTTP's.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	switch {
	case r.URL.Path == "/console" || strings.HasPrefix(r.URL.Path, "/console/"):
		s.serveConsole(w, r)
	case r.URL.Path == OpenAPIPath && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.openAPI.serve(w, r, s.sent(r))
	default:
		return s.api.ServeHTTP(w, r)
	}
	return nil
}

// serveConsole serves the console, or 404 when the app has none.
func (s *Site) serveConsole(w http.ResponseWriter, r *http.Request) {
	if s.console == nil {
		WriteProblem(w, reason.New(reason.ConsoleUnavailable, "the web console needs an oidc issuer in the tokengate app"))
		return
	}
	if r.URL.Path == "/console" {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
		return
	}
	s.console.ServeHTTP(w, r)
}
