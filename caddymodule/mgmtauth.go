package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/gatehttp"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/store"
)

// managementToken authenticates management calls by their management
// token: a token bound to service tokengate-admin, checked on the
// gateway's own request path (format, expiry, revocation, CIDRs, the
// gateway policy, the audit hold), refused as the data plane refuses, in
// problem details. It is Caddy glue because a refusal may be shaped by
// the server's error routes, as the data plane's are.
type managementToken struct {
	app    *App
	header string
	logger *zap.Logger
}

// Authenticate checks the token and returns its holder.
func (m *managementToken) Authenticate(w http.ResponseWriter, r *http.Request, at *mgmtapi.Attempt) (manage.Principal, bool, error) {
	line := at.Line
	call := gateway.Call{
		Service: manage.ManagementService,
		Request: policy.Request{Method: r.Method, Host: r.Host, Path: r.URL.Path, RawPath: at.RawPath, RemoteIP: line.ClientIP},
	}
	call.Secret, call.Problem = gatehttp.Credential(r, m.header)
	res := m.app.gate.Authorize(r.Context(), &call)
	line.Decision, line.Reasons, line.DecisionID, line.Cache, line.PolicyRev = res.Outcome, res.Reasons(), res.DecisionID, res.Cache, res.PolicyRev
	if res.Token != nil {
		line.TokenID, line.Owner, line.HeldBy, line.Purpose, line.Scopes = res.Token.ID, res.Token.Owner, res.Token.HeldBy, res.Token.Purpose, res.Token.Scopes
	}
	if res.Outcome != gateway.Allow {
		if res.Err != nil {
			m.logger.Error("tokengate failed closed", zap.String("request_id", line.RequestID), zap.Error(res.Err))
		}
		var err error
		line.Status, err = refuse(w, r, res, line.RequestID, true)
		return manage.Principal{}, false, err
	}
	r.Header.Del(m.header)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", res.Handoff.Owner)
	repl.Set("tokengate.token_id", res.Handoff.TokenID)
	repl.Set("tokengate.scopes", res.Handoff.ScopesValue)
	repl.Set("tokengate.decision_id", res.Handoff.DecisionID)
	return managementTokenPrincipal(res.Token), true, nil
}

// managementTokenPrincipal is who acts with a management token: its
// holder (manage.HolderOf), compared across all of that person's tokens.
// For a token stored before holders were recorded that is who created it,
// or for a bootstrap token its owner, the person bootstrap named; an owner
// typed into a request never counts.
func managementTokenPrincipal(tok *store.Token) manage.Principal {
	// The holder's groups recorded at their claim: the rules about a
	// person apply whichever of their credentials they call with.
	return manage.Principal{Name: manage.HolderOf(tok), Kind: manage.ManagementTokenKind, TokenID: tok.ID, Scopes: tok.Scopes, Groups: tok.HolderGroups}
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

// CleanPath is cleanPath.
func (caddyHost) CleanPath(p, raw string) (string, string, bool) { return cleanPath(p, raw) }

var _ mgmtapi.Authenticator = (*managementToken)(nil)
