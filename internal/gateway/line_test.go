package gateway

import (
	"slices"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/store"
)

func TestAuditLine(t *testing.T) {
	c := &Call{Service: "billing", Request: policy.Request{Method: "POST", Host: "api.example.com", Path: "/billing/x", RemoteIP: "192.0.2.1"}}
	tok := &store.Token{ID: "tok_1", Owner: "alice", HeldBy: "ci", Purpose: "nightly", Scopes: []string{"billing:read"}}
	res := Result{Outcome: Deny, Refusal: reason.OfCall([]string{"office_hours", reason.ScopeMissing}), Token: tok, DecisionID: "dec_1", Cache: CacheMiss, PolicyRev: "rev1"}
	line := AuditLine(c, res)
	if line.Decision != Deny || !slices.Equal(line.Reasons, []string{"office_hours", reason.ScopeMissing}) || line.Service != "billing" ||
		line.ClientIP != "192.0.2.1" || line.Method != "POST" || line.Host != "api.example.com" || line.Path != "/billing/x" ||
		line.DecisionID != "dec_1" || line.Cache != CacheMiss || line.PolicyRev != "rev1" ||
		line.TokenID != "tok_1" || line.Owner != "alice" || line.HeldBy != "ci" || line.Purpose != "nightly" || !slices.Equal(line.Scopes, tok.Scopes) {
		t.Errorf("line %+v", line)
	}
	// Refused before any lookup: no token, one reason.
	line = AuditLine(c, Refuse(reason.PathInvalid))
	if line.Decision != Deny || !slices.Equal(line.Reasons, []string{reason.PathInvalid}) || line.TokenID != "" || line.Cache != CacheNone {
		t.Errorf("path refusal line %+v", line)
	}
	if line := AuditLine(c, Result{Outcome: Allow, Token: tok}); line.Reasons != nil {
		t.Errorf("allowed call with reasons %v", line.Reasons)
	}
}
