package caddymodule

import (
	"net/http"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// These tests walk chains of names through real Caddy: each tries to turn
// a name typed into a request (an owner, a case variant of a person) into
// a duty that person never had. Each chain must end refused.

// custodyEnv bootstraps management tokens for requester and approver and
// returns their secrets.
func custodyEnv(t *testing.T, requester, approver string) (e *env, asker, decider string) {
	t.Helper()
	e = newEnv(t, envOptions{decisionCache: 1000})
	status, body := e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": requester, "approver": approver})
	if status != http.StatusCreated {
		t.Fatalf("bootstrap: %d %s", status, body)
	}
	for _, tok := range decode[BootstrapResult](t, body).Tokens {
		remember(tok.Secret)
		if tok.Token.HeldBy != tok.Token.Owner {
			t.Errorf("bootstrap token of %s is held by %q", tok.Token.Owner, tok.Token.HeldBy)
		}
		switch tok.Token.Owner {
		case requester:
			asker = tok.Secret
		case approver:
			decider = tok.Secret
		}
	}
	// So that the env's own helpers (approvedToken) use these tokens.
	e.requester, e.approver = asker, decider
	return e, asker, decider
}

// twoPerson runs request (by asker), approve (by decider) and claim (by
// asker) and returns the claimed outcome.
func (e *env) twoPerson(asker, decider string, spec map[string]any) RequestOutcome {
	e.t.Helper()
	status, body := e.mgmt(asker, "POST", "/v1/requests", spec)
	if status != http.StatusAccepted {
		e.t.Fatalf("request: %d %s", status, body)
	}
	id := decode[RequestOutcome](e.t, body).Request.ID
	if status, body := e.mgmt(decider, "POST", "/v1/requests/"+id+"/approve", map[string]string{"reason": "ok"}); status != http.StatusOK {
		e.t.Fatalf("approve: %d %s", status, body)
	}
	status, body = e.mgmt(asker, "POST", "/v1/requests/"+id+"/claim", nil)
	if status != http.StatusCreated {
		e.t.Fatalf("claim: %d %s", status, body)
	}
	out := decode[RequestOutcome](e.t, body)
	remember(out.Secret)
	return out
}

func mgmtSpec(owner string, scopes ...string) map[string]any {
	return map[string]any{"owner": owner, "purpose": "management for " + owner, "scopes": scopes,
		"services": []string{"tokengate-admin"}, "ttl": "1h"}
}

func demoWrite() map[string]any {
	return writeRequest(map[string]any{"owner": "demo-writer", "purpose": "write demo data", "scopes": []string{"billing:write"}})
}

// Chain 1: ann asks for an approver token named after carol, bob approves
// it, ann claims it, then approves her own write request with it. The
// first step is refused: a management token is personal.
func TestChainApproverTokenNamedForSomeoneElse(t *testing.T) {
	t.Parallel()
	e, ann, _ := custodyEnv(t, "ann", "bob")
	for _, owner := range []string{"carol", "Carol", "bob"} {
		status, body := e.mgmt(ann, "POST", "/v1/requests", mgmtSpec(owner, "tokens:approve", "tokens:read"))
		wantRefusal(t, "approver token for "+owner, status, body, http.StatusForbidden, "management_token_not_personal")
	}
	status, body := e.mgmt(ann, "GET", "/v1/requests", nil)
	if reqs := decode[[]RequestView](t, body); status != http.StatusOK || len(reqs) != 0 {
		t.Fatalf("refused requests were stored: %d %s", status, body)
	}
}

// Chain 1, case variant: ann's own approver token, named "ANN", is hers
// (the owner matches her, ignoring case), but it acts as ann, who holds
// it: her own write request stays hers to ask for and someone else's to
// approve.
func TestChainApproverTokenNamedWithACaseVariant(t *testing.T) {
	t.Parallel()
	e, ann, bob := custodyEnv(t, "ann", "bob")
	approverToken := e.twoPerson(ann, bob, mgmtSpec("ANN", "tokens:approve", "tokens:read"))
	if approverToken.Token.HeldBy != "ann" || approverToken.Token.Owner != "ANN" {
		t.Errorf("claimed approver token %+v", approverToken.Token)
	}
	status, body := e.mgmt(ann, "POST", "/v1/requests", demoWrite())
	if status != http.StatusAccepted {
		t.Fatalf("write request: %d %s", status, body)
	}
	req := decode[RequestOutcome](t, body).Request
	status, body = e.mgmt(approverToken.Secret, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{"reason": "mine"})
	wantRefusal(t, "self-approval through a case-variant token", status, body, http.StatusForbidden, "self_approval")
	// The call line of that refusal names the holder of the token used.
	if call := e.auditFor("/v1/requests/" + req.ID + "/approve"); call["held_by"] != "ann" || call["owner"] != "ANN" {
		t.Errorf("call line: %v", call)
	}
}

// Chain 2: ann asks for a request token named after bob, so that what she
// asks for later reads as bob's. Refused at once; and a token she may
// have, named with a case variant of her own name, still records her.
func TestChainRequesterTokenNamedForSomeoneElse(t *testing.T) {
	t.Parallel()
	e, ann, bob := custodyEnv(t, "ann", "bob")
	for _, owner := range []string{"bob", "BOB"} {
		status, body := e.mgmt(ann, "POST", "/v1/requests", mgmtSpec(owner, "tokens:request", "tokens:read"))
		wantRefusal(t, "request token for "+owner, status, body, http.StatusForbidden, "management_token_not_personal")
	}
	mine := e.twoPerson(ann, bob, mgmtSpec("Ann", "tokens:request", "tokens:read"))
	status, body := e.mgmt(mine.Secret, "POST", "/v1/requests", demoWrite())
	if status != http.StatusAccepted {
		t.Fatalf("write request: %d %s", status, body)
	}
	req := decode[RequestOutcome](t, body).Request
	if req.RequestedBy != "ann" || req.HeldBy != "ann" {
		t.Errorf("request made with the Ann token: requested_by %q, held_by %q; want ann", req.RequestedBy, req.HeldBy)
	}
	// The approver sees who will hold the secret, whatever the owner.
	status, body = e.mgmt(bob, "GET", "/v1/requests/"+req.ID, nil)
	if shown := decode[RequestView](t, body); status != http.StatusOK || shown.HeldBy != "ann" || shown.Owner != "demo-writer" {
		t.Fatalf("request as the approver sees it: %d %s", status, body)
	}
}

// Bootstrap with two spellings of one person is one person.
func TestChainBootstrapCaseVariants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	for _, pair := range [][2]string{{"Ann", "ann"}, {"ann", "ANN"}} {
		status, body := e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": pair[0], "approver": pair[1]})
		wantRefusal(t, "bootstrap "+pair[0]+"/"+pair[1], status, body, http.StatusForbidden, "self_approval")
	}
	// Nor may a management token act as the local operator, who holds
	// every token the operator issued.
	status, body := e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": "local-operator", "approver": "bob"})
	wantRefusal(t, "bootstrap naming the local operator", status, body, http.StatusForbidden, "principal_reserved")
	status, body = e.admin("GET", "/tokengate/tokens?service=tokengate-admin", nil)
	if toks := decode[[]TokenView](t, body); status != http.StatusOK || len(toks) != 0 {
		t.Fatalf("refused bootstraps left tokens: %d %s", status, body)
	}
}

// Rotating hands out a new secret: bob approved ann's write token named
// after him, and may neither rotate it (taking a secret he approved for
// someone else) nor revoke it. ann, who holds it, may rotate it; a token
// the local operator issued in ann's name is the operator's, not hers.
func TestChainRotateATokenSomeoneElseHolds(t *testing.T) {
	t.Parallel()
	e, ann, bob := custodyEnv(t, "ann", "bob")
	named := e.twoPerson(ann, bob, writeRequest(map[string]any{"owner": "bob"}))
	if named.Token.HeldBy != "ann" {
		t.Errorf("claimed token held by %q", named.Token.HeldBy)
	}
	status, body := e.mgmt(bob, "POST", "/v1/tokens/"+named.Token.ID+"/rotate", map[string]string{"grace": "1m"})
	wantRefusal(t, "owner by name rotating", status, body, http.StatusForbidden, "not_owner")
	status, body = e.mgmt(bob, "POST", "/v1/tokens/"+named.Token.ID+"/revoke", map[string]string{"reason": "mine"})
	wantRefusal(t, "owner by name revoking", status, body, http.StatusForbidden, "not_owner")

	_, issuedID := e.issue(billingReader(map[string]any{"owner": "ann"}))
	status, body = e.mgmt(ann, "POST", "/v1/tokens/"+issuedID+"/rotate", map[string]string{"grace": "1m"})
	wantRefusal(t, "rotating a token the local operator holds", status, body, http.StatusForbidden, "not_owner")

	status, body = e.mgmt(ann, "POST", "/v1/tokens/"+named.Token.ID+"/rotate", map[string]string{"grace": "1m"})
	if status != http.StatusCreated {
		t.Fatalf("holder rotating: %d %s", status, body)
	}
	rotated := decode[IssuedToken](t, body)
	remember(rotated.Secret)
	if rotated.Token.HeldBy != "ann" || rotated.Token.Owner != "bob" {
		t.Fatalf("successor %+v", rotated.Token)
	}
	if r := call(t, "POST", e.gateURL+"/billing/custody-rotated", bearer(rotated.Secret)...); r.status != http.StatusOK {
		t.Fatalf("rotated secret: %d %s", r.status, r.body)
	}
	if line := e.auditFor("/billing/custody-rotated"); line["held_by"] != "ann" || line["owner"] != "bob" {
		t.Errorf("call line of the rotated secret: %v", line)
	}
}

// Revoke and reissue: bob leaves, the operator revokes his approver
// token, and ann asks for a replacement "for bob". Refused: it would be
// hers, under his name.
func TestChainRevokeAndReissue(t *testing.T) {
	t.Parallel()
	e, ann, _ := custodyEnv(t, "ann", "bob")
	status, body := e.admin("GET", "/tokengate/tokens?owner=bob", nil)
	toks := decode[[]TokenView](t, body)
	if status != http.StatusOK || len(toks) != 1 {
		t.Fatalf("bob's tokens: %d %s", status, body)
	}
	if status, body := e.admin("POST", "/tokengate/tokens/"+toks[0].ID+"/revoke", map[string]string{"reason": "left the team"}); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	for _, owner := range []string{"bob", "Bob"} {
		status, body = e.mgmt(ann, "POST", "/v1/requests", mgmtSpec(owner, "tokens:approve", "tokens:read"))
		wantRefusal(t, "reissuing bob's approver token to ann", status, body, http.StatusForbidden, "management_token_not_personal")
	}
	// The refused action lines name who asked.
	refused := 0
	for _, l := range e.auditLines() {
		if l["msg"] == "token.requested" && l["outcome"] == "refused" && l["actor"] == "ann" {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d refused token.requested lines by ann, want 2", refused)
	}
}

// plantLegacyToken stores t with no holder recorded, through the running
// app's own store and hasher, and returns its secret: a record the code
// before held_by would have written.
func (e *env) plantLegacyToken(t *store.Token) string {
	e.t.Helper()
	var secret string
	e.control("plant-token", nil, t, &secret)
	remember(secret)
	return secret
}

// Chain 1 on data stored before holders were recorded: ann already holds
// an approver token named carol (she asked for it, bob approved, she
// claimed it). It acts as ann, who received it, not as carol.
func TestChainLegacyApproverTokenNamedForSomeoneElse(t *testing.T) {
	t.Parallel()
	e, ann, _ := custodyEnv(t, "ann", "bob")
	now := e.now().UTC()
	carol := e.plantLegacyToken(&store.Token{Owner: "carol", Purpose: "management for carol",
		Scopes: []string{"tokens:approve", "tokens:read"}, Services: []string{"tokengate-admin"},
		NotBefore: now, ExpiresAt: now.Add(time.Hour), CreatedAt: now, CreatedBy: "ann", ApprovedBy: "bob"})
	status, body := e.mgmt(ann, "POST", "/v1/requests", demoWrite())
	if status != http.StatusAccepted {
		t.Fatalf("write request: %d %s", status, body)
	}
	req := decode[RequestOutcome](t, body).Request
	status, body = e.mgmt(carol, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{"reason": "carol says yes"})
	wantRefusal(t, "self-approval through a legacy token named carol", status, body, http.StatusForbidden, "self_approval")
}

// The local operator may rotate a short read-only token, management
// tokens included, and then holds the new secret. Used on the management
// API it acts as the local operator, a name reserved for Caddy's admin
// endpoint: refused, never taken for the person it was named after.
func TestChainLocalOperatorRotatesAManagementToken(t *testing.T) {
	t.Parallel()
	e, ann, bob := custodyEnv(t, "ann", "bob")
	reader := e.twoPerson(ann, bob, map[string]any{"owner": "ann", "purpose": "read the inventory",
		"scopes": []string{"tokens:read"}, "services": []string{"tokengate-admin"}, "ttl": "30m"})
	status, body := e.admin("POST", "/tokengate/tokens/"+reader.Token.ID+"/rotate", map[string]string{"grace": "0s"})
	if status != http.StatusCreated {
		t.Fatalf("local rotate: %d %s", status, body)
	}
	rotated := decode[IssuedToken](t, body)
	remember(rotated.Secret)
	if rotated.Token.HeldBy != "local-operator" {
		t.Errorf("rotated management token held by %q, want local-operator", rotated.Token.HeldBy)
	}
	status, body = e.mgmt(rotated.Secret, "GET", "/v1/tokens", nil)
	wantRefusal(t, "the local operator's management token", status, body, http.StatusForbidden, "principal_reserved")
}

// Chain 1 caught halfway: ann's request for an approver token named
// carol was made before this check existed and waits for approval. Bob
// may not approve it, and had he approved it, ann could not claim it.
func TestChainPendingApproverTokenNamedForSomeoneElse(t *testing.T) {
	t.Parallel()
	e, _, bob := custodyEnv(t, "ann", "bob")
	now := e.now().UTC().Truncate(time.Microsecond)
	for _, status := range []string{store.RequestPending, store.RequestApproved} {
		req := &store.Request{ID: token.NewPrefixedID("req_"), Owner: "carol", Purpose: "management for carol",
			Scopes: []string{"tokens:approve", "tokens:read"}, Services: []string{"tokengate-admin"}, TTL: time.Hour,
			Status: status, RequestedBy: "ann", CreatedAt: now}
		if status == store.RequestApproved {
			req.DecidedBy, req.DecidedAt, req.ClaimBy = "bob", now, now.Add(10*time.Minute)
		}
		e.control("plant-request", nil, req, nil)
		if status == store.RequestPending {
			code, body := e.mgmt(bob, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{"reason": "ok"})
			wantRefusal(t, "approving an approver token named carol for ann", code, body, http.StatusForbidden, "management_token_not_personal")
			continue
		}
		code, body := e.mgmt(e.requester, "POST", "/v1/requests/"+req.ID+"/claim", nil)
		wantRefusal(t, "claiming an approver token named carol", code, body, http.StatusForbidden, "management_token_not_personal")
	}
}
