package mgmtapi

import (
	"context"
	"net/http"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/gatehttp"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/store"
)

// Gate decides a call on the gateway's request path: gateway.Gate.
type Gate interface {
	Authorize(ctx context.Context, call *gateway.Call) gateway.Result
}

// ManagementToken authenticates management calls by their management
// token: a token bound to service tokengate-admin, checked on the
// gateway's own request path (format, expiry, revocation, CIDRs, the
// gateway policy, the audit hold) and refused as the data plane refuses,
// in problem details. What only the server in front knows (its error
// routes, its placeholders) comes in as functions.
type ManagementToken struct {
	Gate Gate
	// Header carries the token (canonical name); it is removed from an
	// allowed call's request.
	Header string
	// Refuse answers a refused call in problem details (or lets the
	// server's error routes answer it). It returns the status it chose
	// and the error to hand to the server, if any.
	Refuse func(w http.ResponseWriter, r *http.Request, res gateway.Result, requestID string) (int, error)
	// Allowed tells the server in front who an allowed call is (its
	// placeholders); nil tells nothing.
	Allowed func(r *http.Request, res gateway.Result)
	Logger  *zap.Logger
}

// Authenticate checks the token and returns its holder.
func (m *ManagementToken) Authenticate(w http.ResponseWriter, r *http.Request, at *Attempt) (manage.Principal, bool, error) {
	line := at.Line
	call := gateway.Call{
		Service: manage.ManagementService,
		Request: policy.Request{Method: r.Method, Host: r.Host, Path: r.URL.Path, RawPath: at.RawPath, RemoteIP: line.ClientIP},
	}
	call.Secret, call.Problem = gatehttp.Credential(r, m.Header)
	res := m.Gate.Authorize(r.Context(), &call)
	line.Decision, line.Reasons, line.DecisionID, line.Cache, line.PolicyRev = res.Outcome, res.Reasons(), res.DecisionID, res.Cache, res.PolicyRev
	if res.Token != nil {
		line.TokenID, line.Owner, line.HeldBy, line.Purpose, line.Scopes = res.Token.ID, res.Token.Owner, res.Token.HeldBy, res.Token.Purpose, res.Token.Scopes
	}
	if res.Outcome != gateway.Allow {
		if res.Err != nil {
			m.Logger.Error("tokengate failed closed", zap.String("request_id", line.RequestID), zap.Error(res.Err))
		}
		var err error
		line.Status, err = m.Refuse(w, r, res, line.RequestID)
		return manage.Principal{}, false, err
	}
	r.Header.Del(m.Header)
	if m.Allowed != nil {
		m.Allowed(r, res)
	}
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

var _ Authenticator = (*ManagementToken)(nil)
