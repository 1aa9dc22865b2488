// Package mgmtapi is the management API: its routes, handlers, problem
// details, paging and the token exchange endpoint, with no Caddy in it.
// caddymodule serves it twice through thin adapters: as the
// tokengate_admin handler under /v1/ and on Caddy's admin endpoint under
// /tokengate/ for the local operator.
//
// Every call takes one way in: the Server cleans the path, asks its
// Authenticator who is calling (a management token, a person's ID token,
// a console session, the local operator), and hands that one actor to the
// route, which asks manage.Service to act (the admin policy decides, and
// manage writes the action lines). The Server alone writes the call's
// audit line, once, after the route answered, with the management outcome
// in it.
//
// The token exchange (POST /v1/token) takes the same way in with an
// Authenticator of its own, Workload, whose actor is the verified
// workload; it answers in OAuth's shape and its trail is the action line
// of each attempt. Endpoints that need no credential mount beside the
// Server (the sign-in configuration, GitHub's leak alerts), not inside it.
package mgmtapi

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/store"
)

// Node is what the routes act on: one running tokengate app. caddymodule
// builds it at provision; the zero values of the unexported fields are
// ready to use.
type Node struct {
	Manage *manage.Service
	Audit  *audit.Logger
	Store  store.Backend
	Logger *zap.Logger
	Now    func() time.Time
	// MaxTTL is the lifetime of bootstrap tokens when none is asked.
	MaxTTL time.Duration
	// ParseDuration reads durations as the Caddyfile does (30d too).
	ParseDuration func(string) (time.Duration, error)
	// AuditFailOpen lets the store backup out while audit lines fail.
	AuditFailOpen bool
	// AuditHold is the reason allowed calls are held (audit lines cannot
	// be written), or "".
	AuditHold func() string
	// BreakGlass is this node's pending recovery, BreakGlassDir where its
	// confirmation codes are written.
	BreakGlass    *breakglass.Desk
	BreakGlassDir string
	// People verifies ID tokens (nil without oidc); SignIn is what the CLI
	// needs to sign people in (nil without oidc).
	People *identity.Verifier
	SignIn *api.SignInConfig
	// Workloads verifies subject tokens for the exchange (nil without
	// workload issuers); ExchangeBrake limits its attempts per address.
	Workloads     *identity.Workloads
	ExchangeBrake *addrlimit.Limiter
	// Leaks takes in secrets found in the wild (POST /v1/leaks and
	// GitHub's alerts); nil serves none.
	Leaks *leaks.Intake

	groups      groupsSeen
	unreachable warnLimiter
}

// Host tells what only the server in front knows about a request.
type Host interface {
	// Trace is the request's ids: the server's request id and the
	// tracing ids, for the audit lines.
	Trace(r *http.Request) audit.Trace
	// ClientIP is the client's address as the server trusts it.
	ClientIP(r *http.Request) string
	// CleanPath is the path as the gateway reads it (see
	// gatehttp.CleanPath); ok is false for one it refuses.
	CleanPath(p, raw string) (clean, escaped string, ok bool)
}

// Attempt is one management call being authenticated.
type Attempt struct {
	Node *Node
	// Line is the call's audit line, with the client's address in it; the
	// Authenticator fills in what it learnt (the token, the decision, the
	// refusal and its status). The token exchange writes none.
	Line *audit.Call
	// RawPath is the path as sent; the request's URL holds the cleaned
	// one.
	RawPath string
}

// Authenticator finds who makes a management call, in the spirit of
// caddyauth's: it returns the actor and true, or answers the request with
// its refusal (and records it on the Attempt's line) and returns false.
// err is for the server in front (Caddy's error routes), never a reason
// to answer 500.
type Authenticator interface {
	Authenticate(w http.ResponseWriter, r *http.Request, a *Attempt) (actor manage.Principal, ok bool, err error)
}

// Options configure a Server.
type Options struct {
	// Node returns the node to act on, or nil when none runs (the admin
	// endpoint outlives configs without a tokengate app).
	Node func() *Node
	Auth Authenticator
	Host Host
	// Prefix is where the routes are: /v1 or /tokengate.
	Prefix string
	// Local serves the local operator's routes (issue, bootstrap,
	// backup, break glass) instead of the two-person flow.
	Local bool
	// Observe counts each call line (the metrics); nil writes no call
	// lines (the admin endpoint's calls have their action lines only).
	Observe func(*audit.Call)
	Logger  *zap.Logger
}

// Server serves the management routes behind one Authenticator.
type Server struct {
	opts   Options
	mux    *http.ServeMux
	own    map[string]ownRoute
	beside map[string]BesideFunc
}

// ownRoute is an endpoint whose callers bring a credential of their own
// kind and read answers in their own shape (the token exchange: a
// workload's subject token, OAuth errors). It takes the same way in as
// every call, its Authenticator yielding the actor and manage.Service
// acting for it and writing the action line of every attempt, but no call
// line: each attempt's action line is its trail.
type ownRoute struct {
	auth  Authenticator
	serve func(c *call, w http.ResponseWriter, r *http.Request)
}

// serveAs serves serve at path (an exact path), authenticated by auth.
func (s *Server) serveAs(path string, auth Authenticator, serve func(c *call, w http.ResponseWriter, r *http.Request)) {
	if s.own == nil {
		s.own = map[string]ownRoute{}
	}
	s.own[path] = ownRoute{auth: auth, serve: serve}
}

// New builds the routes.
func New(o Options) *Server {
	s := &Server{opts: o, mux: http.NewServeMux()}
	p := o.Prefix
	if o.Local {
		s.handle("POST "+p+"/tokens", issueToken)
		s.handle("POST "+p+"/bootstrap", bootstrap)
		s.handle("GET "+p+"/backup", backupStore)
		s.handle("POST "+p+"/break-glass", startBreakGlass)
		s.handle("POST "+p+"/break-glass/{id}/confirm", confirmBreakGlass)
		s.handle("POST "+p+"/leaks", reportLeaks)
	} else {
		s.handle("POST "+p+"/requests", createRequest)
		s.handle("GET "+p+"/requests", listRequests)
		s.handle("GET "+p+"/requests/{id}", showRequest)
		s.handle("POST "+p+"/requests/{id}/approve", decideRequest(true))
		s.handle("POST "+p+"/requests/{id}/deny", decideRequest(false))
		s.handle("POST "+p+"/requests/{id}/claim", claimRequest)
		s.serveAs(ExchangePath, Workload{}, exchangeToken)
		s.Mount(SignInPath, serveSignInConfig)
		s.Mount(LeaksGitHubPath, serveGitHubLeaks)
		s.handle("POST "+p+"/leaks", reportLeaks)
	}
	s.handle("GET "+p+"/tokens", listTokens)
	s.handle("GET "+p+"/tokens/{id}", showToken)
	s.handle("POST "+p+"/tokens/{id}/revoke", revokeToken)
	s.handle("POST "+p+"/tokens/{id}/rotate", rotateToken)
	s.handle("GET "+p+"/report", hygieneReport)
	s.handle("POST "+p+"/check", checkDecision)
	s.mux.HandleFunc(p+"/", unknownRoute(s.mux, p+"/"))
	s.mux.HandleFunc("/", unknownRoute(s.mux, "/"))
	return s
}

// call is one authenticated call as its route sees it. Only the Server
// creates it, and only the route wrapper records its outcome.
type call struct {
	node  *Node
	actor manage.Principal
	host  Host
	line  *audit.Call
}

type callKey struct{}

// ServeHTTP is the one way in: clean the path, authenticate, serve the
// route as the actor, write the call line.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	node := s.opts.Node()
	if node == nil {
		WriteProblem(w, reason.New(reason.TokengateNotRunning, "the running config has no tokengate app"))
		return nil
	}
	if route, ok := s.own[r.URL.Path]; ok {
		return s.serveOwn(node, route, w, r)
	}
	if h, ok := s.beside[r.URL.Path]; ok {
		h(node, s.opts.Host, w, r)
		return nil
	}
	// GitHub's forwarded alert webhook shares POST /v1/leaks with
	// reports that carry a credential; its own signature stands in for one.
	if !s.opts.Local && leakWebhook(node, w, r) {
		return nil
	}
	start := node.Now()
	trace := s.opts.Host.Trace(r)
	rawPath := r.URL.EscapedPath()
	path, escaped, pathOK := s.opts.Host.CleanPath(r.URL.Path, rawPath)
	line := audit.Call{
		Service: manage.ManagementService, ClientIP: s.opts.Host.ClientIP(r),
		Method: r.Method, Host: r.Host, Path: path, Cache: gateway.CacheNone,
		RequestID: trace.RequestID, TraceID: trace.TraceID, SpanID: trace.SpanID,
	}
	if s.opts.Observe != nil {
		defer func() {
			line.Duration = node.Now().Sub(start)
			s.opts.Observe(&line)
			node.Audit.Call(&line)
		}()
	}
	if !pathOK {
		line.Path = rawPath
		line.Decision, line.Reasons, line.Status = gateway.Deny, []string{reason.PathInvalid}, http.StatusBadRequest
		WriteProblem(w, reason.New(reason.PathInvalid, ""))
		return nil
	}
	r.URL.Path, r.URL.RawPath = path, escaped
	actor, ok, err := s.opts.Auth.Authenticate(w, r, &Attempt{Node: node, Line: &line, RawPath: rawPath})
	if !ok {
		return err
	}
	line.Decision = gateway.Allow
	c := &call{node: node, actor: actor, host: s.opts.Host, line: &line}
	rec := &statusRecorder{ResponseWriter: w}
	ctx := audit.WithTrace(context.WithValue(r.Context(), callKey{}, c), trace)
	s.mux.ServeHTTP(rec, r.WithContext(ctx))
	line.Status = rec.status()
	return nil
}

// serveOwn authenticates a call to route and serves it as the actor.
func (s *Server) serveOwn(node *Node, route ownRoute, w http.ResponseWriter, r *http.Request) error {
	r = r.WithContext(audit.WithTrace(r.Context(), s.opts.Host.Trace(r)))
	line := audit.Call{ClientIP: s.opts.Host.ClientIP(r)}
	actor, ok, err := route.auth.Authenticate(w, r, &Attempt{Node: node, Line: &line, RawPath: r.URL.EscapedPath()})
	if !ok {
		return err
	}
	route.serve(&call{node: node, actor: actor, host: s.opts.Host, line: &line}, w, r)
	return nil
}

// routeFunc is one management action: it answers w, or returns the error
// the route wrapper answers.
type routeFunc func(c *call, w http.ResponseWriter, r *http.Request) error

// handle registers f: the one place a management action's error becomes
// an answer and the call line's outcome.
func (s *Server) handle(pattern string, f routeFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c := r.Context().Value(callKey{}).(*call)
		err := f(c, w, r)
		if err == nil {
			return
		}
		_, technical := writeError(w, err)
		if technical {
			s.opts.Logger.Error("token management failed", zap.String("route", pattern), zap.Error(err))
		}
		c.line.Decision, c.line.Reasons = outcomeOf(err, technical)
	})
}

// LocalOperator authenticates every call as the local operator: whoever
// reaches Caddy's admin endpoint operates this node.
type LocalOperator struct{}

// localOperator is the principal of every admin endpoint call.
var localOperator = manage.Principal{Name: manage.LocalOperator, Local: true}

// Authenticate returns the local operator.
func (LocalOperator) Authenticate(http.ResponseWriter, *http.Request, *Attempt) (manage.Principal, bool, error) {
	return localOperator, true, nil
}
