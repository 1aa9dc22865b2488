package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/gatehttp"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
)

// managementToken authenticates management calls by a management token
// in header (mgmtapi.ManagementToken), read and refused as the data plane
// reads and refuses: a refusal may be shaped by the server's error routes,
// and an allowed call's identity is in Caddy's placeholders.
func (a *App) managementToken(header string, logger *zap.Logger) *mgmtapi.ManagementToken {
	return &mgmtapi.ManagementToken{
		Gate:   a.gate,
		Header: header,
		Refuse: func(w http.ResponseWriter, r *http.Request, res gateway.Result, requestID string) (int, error) {
			return refuse(w, r, res, requestID, true)
		},
		Allowed: func(r *http.Request, res gateway.Result) {
			setIdentityPlaceholders(r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer), res)
		},
		Logger: logger,
	}
}

// caddyHost tells the management API what Caddy knows of a request.
type caddyHost struct{}

// Trace names r for its audit lines: Caddy's request UUID and the ids
// Caddy's tracing handler put in the request variables when tracing is
// on. A call to Caddy's admin endpoint has none of them.
func (caddyHost) Trace(r *http.Request) audit.Trace {
	var t audit.Trace
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		t.RequestID = requestID(repl)
	}
	t.TraceID, t.SpanID = traceIDs(r)
	return t
}

// ClientIP is the client address as Caddy's trusted_proxies resolve it.
func (caddyHost) ClientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// CleanPath is the path as the data plane reads it (gatehttp.CleanPath).
func (caddyHost) CleanPath(p, raw string) (string, string, bool) { return gatehttp.CleanPath(p, raw) }

// sentPath is r's path as the client sent it, before a handle_path or a
// rewrite in front changed it.
func sentPath(r *http.Request) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		return orig.URL.Path
	}
	return r.URL.Path
}
