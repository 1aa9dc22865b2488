package mgmtapi

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/audit"
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

// APIPrefix is where the Site serves the management routes.
const APIPrefix = "/v1"

// CredentialHeader is the header management tokens come in, from the
// tokengate_admin handler's header option: in canonical form, and
// Authorization when the option is not set.
func CredentialHeader(option string) string {
	if option == "" {
		return "Authorization"
	}
	return http.CanonicalHeaderKey(option)
}

// SiteOptions configure a Site.
type SiteOptions struct {
	// Node returns the node to act on, or nil when none runs.
	Node func() *Node
	// Header is the management tokens' header, as CredentialHeader gives
	// it; Token authenticates the calls that bring no ID token. ID tokens
	// come only in Authorization.
	Header string
	Token  Authenticator
	Host   Host
	// Observe counts each call line (the metrics).
	Observe func(*audit.Call)
	Logger  *zap.Logger
	// Console is the web console; nil answers 404.
	Console *console.Console
	// SentPath is the path of a request as its client sent it, before a
	// rewrite in front.
	SentPath func(*http.Request) string
}

// NewSite builds the management routes under APIPrefix behind one
// authenticator (a person's ID token or a management token, by the
// credential's kind), with the console and the API's description beside
// them.
func NewSite(o SiteOptions) (*Site, error) {
	doc, err := newOpenAPIDocument()
	if err != nil {
		return nil, err
	}
	api := New(Options{
		Node:    o.Node,
		Auth:    ByCredential{Header: o.Header, Person: Person{}, Token: o.Token},
		Host:    o.Host,
		Prefix:  APIPrefix,
		Observe: o.Observe,
		Logger:  o.Logger,
	})
	return &Site{api: api, console: o.Console, sent: o.SentPath, openAPI: doc}, nil
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
