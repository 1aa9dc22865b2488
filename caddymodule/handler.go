package caddymodule

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/gatehttp"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the `tokengate` HTTP handler, `http.handlers.tokengate`. It
// lets a request through only when its bearer token passes the gateway
// policy for the configured service, then strips the credential and
// forwards the caller's identity to the next handler.
//
// Answers: 401 with `WWW-Authenticate: Bearer ... error="invalid_token"`
// for a missing, malformed, unknown, expired, not yet valid, revoked,
// rotated or used-up token; 403 with `error="insufficient_scope"` for a
// good token used on the wrong service, with the wrong scope or from the
// wrong address; 503 when the store or the policy fails (fail closed). The
// JSON body is {"error","reason","request_id"} and never echoes the token.
//
// The policy, the decision cache and the audit line see the request path
// cleaned as Caddy's path matchers clean it, and that path is what the
// upstream receives; input.request.raw_path is the path as sent. A path
// that could name another resource to an upstream (an encoded slash or
// dot segment, a backslash, ';') is answered 400 path_invalid.
//
// A refusal sets the placeholders {tokengate.reason} (the reason code),
// {tokengate.error} (the RFC 6750 error code) and {tokengate.request_id},
// and its WWW-Authenticate, Retry-After and Cache-Control headers. When one
// of the server's error routes (handle_errors) matches it, the refusal is
// returned to them as a caddyhttp.Error with that status, so they shape
// the answer; otherwise the handler writes the JSON body above itself.
// Either way the audit line records the status tokengate chose.
//
// Headers set for the upstream: X-Tokengate-Token-Id, X-Tokengate-Owner,
// X-Tokengate-Scopes, X-Tokengate-Decision-Id. Placeholders:
// {http.auth.user.id} (the owner), {tokengate.token_id},
// {tokengate.scopes}, {tokengate.decision_id}.
type Handler struct {
	// Service this route belongs to; tokens must be bound to it.
	Service string `json:"service"`
	// Header carrying the credential. Default Authorization, which takes
	// the Bearer scheme; any other header carries the bare token. Query
	// strings are never read: they end up in logs and browser history.
	Header string `json:"header,omitempty"`
	// Request headers the policy may read (input.request.headers). They
	// become part of the decision cache key.
	PolicyHeaders []string `json:"policy_headers,omitempty"`

	app    *App
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tokengate",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the tokengate app, creating it with defaults when the
// config has no global tokengate block.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Header == "" {
		h.Header = "Authorization"
	}
	h.Header = http.CanonicalHeaderKey(h.Header)
	for i, name := range h.PolicyHeaders {
		h.PolicyHeaders[i] = http.CanonicalHeaderKey(name)
	}
	app, err := ctx.App("tokengate")
	if err != nil {
		return fmt.Errorf("getting tokengate app: %v", err)
	}
	h.app = app.(*App)
	return nil
}

// Validate refuses a handler that would enforce nothing useful.
func (h *Handler) Validate() error {
	if h.Service == "" {
		return fmt.Errorf("tokengate: service is required")
	}
	return gatehttp.CheckCredentialHeader(h.Header, h.PolicyHeaders)
}

// ServeHTTP runs the request path for one call (ARCHITECTURE.md follows
// it from header to audit line).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	clientIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	call := gatehttp.ReadCall(r, h.Service, h.Header, h.PolicyHeaders, clientIP)
	var res gateway.Result
	if call.PathOK {
		res = h.app.gate.Authorize(r.Context(), &call.Call)
	} else {
		// Nothing is authorized; the audit line shows what was sent.
		res = gateway.Refuse(reason.PathInvalid)
	}
	metrics.Decision(h.Service, res.Outcome, res.Reasons(), res.Cache)

	line := gateway.AuditLine(&call.Call, res)
	line.TraceID, line.SpanID = traceIDs(r)
	defer func() {
		line.Duration = time.Since(start)
		if ce := h.app.audit.CheckCall(); ce != nil {
			// WriteCall copies line to the heap, only when a line is
			// written; line itself stays on the stack.
			audit.WriteCall(ce, &line)
		}
	}()

	if res.Outcome != gateway.Allow {
		line.RequestID = requestID(repl)
		if res.Err != nil {
			h.logger.Error("tokengate failed closed", zap.String("request_id", line.RequestID), zap.Error(res.Err))
		}
		var err error
		line.Status, err = refuse(w, r, res, line.RequestID, false)
		return err
	}

	// The upstream gets the path that was authorized, not another spelling
	// of it that it might resolve differently.
	r.URL.Path, r.URL.RawPath = call.Request.Path, call.EscapedPath
	gatehttp.HandOn(r, h.Header, res)
	setIdentityPlaceholders(repl, res)
	gatehttp.SetRateLimitFields(w.Header(), res.RateLimit)

	if !h.app.audit.Enabled() {
		// No line will be written, so its status is not needed: the
		// answer goes straight to the client, with no recorder.
		return next.ServeHTTP(w, r)
	}
	// The request id is made now, not when the line is written after the
	// upstream answered: making it writes the request's variables, which
	// the reverse proxy's dialer may still be reading in another
	// goroutine after next returns (the race detector caught that).
	line.RequestID = requestID(repl)
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	err := next.ServeHTTP(rec, r)
	line.Status = rec.Status()
	if herr, ok := err.(caddyhttp.HandlerError); ok && herr.StatusCode != 0 {
		line.Status = herr.StatusCode
	} else if err != nil {
		line.Status = http.StatusInternalServerError
	}
	return err
}

// setIdentityPlaceholders gives the routes after an allowed call the
// caller's identity: {http.auth.user.id} (the owner), {tokengate.token_id},
// {tokengate.scopes} and {tokengate.decision_id}.
func setIdentityPlaceholders(repl *caddy.Replacer, res gateway.Result) {
	repl.Set("http.auth.user.id", res.Handoff.Owner)
	repl.Set("tokengate.token_id", res.Handoff.TokenID)
	repl.Set("tokengate.scopes", res.Handoff.ScopesValue)
	repl.Set("tokengate.decision_id", res.Handoff.DecisionID)
}

// traceIDs returns the trace and span ids Caddy's tracing handler put in
// r's variables (the ids it also sends upstream in traceparent), or
// empty strings when no tracing handler ran before this one.
func traceIDs(r *http.Request) (traceID, spanID string) {
	traceID, _ = caddyhttp.GetVar(r.Context(), "trace_id").(string)
	spanID, _ = caddyhttp.GetVar(r.Context(), "span_id").(string)
	return traceID, spanID
}

// requestID is Caddy's id of the request, {http.request.uuid}. Caddy makes
// it on first use (a random UUID, also added to the access log line), so
// the handler asks for it only when an answer or an audit line carries it.
func requestID(repl *caddy.Replacer) string {
	id, _ := repl.GetString("http.request.uuid")
	return id
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
