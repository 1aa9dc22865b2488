package caddymodule

import (
	"net/http"
	"slices"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// personRulesEnv is real Caddy with a real OpenID provider: alice is a
// developer by her IdP groups, bob an approver, carol in no group; billing
// is a production service.
func personRulesEnv(t *testing.T) (*env, *oidcop.OP) {
	t.Helper()
	users := append(oidcop.DefaultUsers(), oidcop.User{Username: "carol", Email: "carol@example.com", EmailVerified: true})
	op := oidcop.Start(t, oidcop.Options{Users: users})
	// billing opts out of step-up: these tests approve through the API,
	// which cannot take a security key (the console tests cover step-up).
	dir := copyPolicies(t, map[string]string{"tokengate/directory/data.json": `{
		"services": {"billing": {"environment": "production", "step_up": false}, "search": {"environment": "staging"}}
	}`})
	return newEnv(t, envOptions{policyDir: dir, appOptions: withOIDC(op)}), op
}

// directoryKnowsAlice is the shipped policy folder with a directory that
// lists alice (the bootstrap requester) in a group: the policy approves
// requests automatically only for principals its directory knows.
func directoryKnowsAlice(t *testing.T) string {
	return copyPolicies(t, map[string]string{"tokengate/directory/data.json": `{"groups": {"requesters": ["alice"]}}`})
}

// billingWrite asks for a production write, with the ticket such a
// request needs.
func billingWrite(owner string) map[string]any {
	return map[string]any{"owner": owner, "purpose": "push invoices", "scopes": []string{"billing:write"},
		"services": []string{"billing"}, "ttl": "1h", "ticket": "CHG-17"}
}

// managementToken is a tokens:request management token for owner, through
// the two-person flow: the person asks and claims with credential, bob
// approves with his ID token. It returns the management token's secret.
func (e *env) managementToken(credential, owner, approver string) string {
	e.t.Helper()
	status, body := e.send(e.mgmtURL, credential, "POST", "/v1/requests", map[string]any{
		"owner": owner, "purpose": "my management token", "scopes": []string{"tokens:request", "tokens:read"},
		"services": []string{"tokengate-admin"}, "ttl": "1h"})
	if status != http.StatusAccepted {
		e.t.Fatalf("%s asks for a management token: %d %s", owner, status, body)
	}
	id := decode[RequestOutcome](e.t, body).Request.ID
	e.approve(approver, id)
	return e.claimAs(credential, id)
}

func (e *env) approve(approver, id string) {
	e.t.Helper()
	if status, body := e.send(e.mgmtURL, approver, "POST", "/v1/requests/"+id+"/approve", map[string]string{"reason": "ok"}); status != http.StatusOK {
		e.t.Fatalf("approve %s: %d %s", id, status, body)
	}
}

func (e *env) claimAs(credential, id string) string {
	e.t.Helper()
	return e.claimOutcome(credential, id).Secret
}

func (e *env) claimOutcome(credential, id string) RequestOutcome {
	e.t.Helper()
	status, body := e.send(e.mgmtURL, credential, "POST", "/v1/requests/"+id+"/claim", nil)
	claimed := decode[RequestOutcome](e.t, body)
	if status != http.StatusCreated || claimed.Secret == "" {
		e.t.Fatalf("claim %s: %d %s", id, status, body)
	}
	remember(claimed.Secret)
	return claimed
}

// ask requests spec with credential and wants it pending; it returns the
// request id.
func (e *env) askPending(credential string, spec map[string]any) string {
	e.t.Helper()
	status, body := e.send(e.mgmtURL, credential, "POST", "/v1/requests", spec)
	if status != http.StatusAccepted {
		e.t.Fatalf("request %v: %d %s", spec, status, body)
	}
	return decode[RequestOutcome](e.t, body).Request.ID
}

// The chain of the attack round: a developer refused a production write as
// a person gets a management token approved and asks with it. Her IdP
// groups were recorded on the token at her claim, so the management token
// is refused exactly as she is.
func TestDeveloperRuleFollowsHerManagementToken(t *testing.T) {
	t.Parallel()
	e, op := personRulesEnv(t)
	alice := op.SignIn(t, oidcop.CLIClientID, "alice")
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")

	status, body := e.send(e.mgmtURL, alice, "POST", "/v1/requests", billingWrite("alice"))
	wantRefusal(t, "developer asks for a production write as a person", status, body, http.StatusForbidden, "developer_production_write")

	mgmt := e.managementToken(alice, "alice", bob)
	status, body = e.mgmt(mgmt, "POST", "/v1/requests", billingWrite("alice"))
	wantRefusal(t, "developer asks for a production write with her management token", status, body, http.StatusForbidden, "developer_production_write")
	if t.Failed() {
		// Where the old code let the request through, follow the chain to
		// its end, so the failure says how far it went.
		id := decode[RequestOutcome](t, body).Request.ID
		e.approve(bob, id)
		if status, body := e.send(e.mgmtURL, alice, "POST", "/v1/requests/"+id+"/claim", nil); status == http.StatusCreated {
			remember(decode[RequestOutcome](t, body).Secret)
			t.Fatalf("the chain ended with the developer holding a production write: %s", body)
		}
	}
	e.wantRefusedAction("token.requested", "alice", "developer_production_write")
}

// A person who joins developers after asking is refused at the claim: the
// claim asks the policy again with the claimer's groups as the IdP gives
// them now, whichever of her credentials asked.
func TestClaimAsksAgainWithTheClaimersGroups(t *testing.T) {
	t.Parallel()
	e, op := personRulesEnv(t)
	carol := op.SignIn(t, oidcop.CLIClientID, "carol")
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")
	mgmt := e.managementToken(carol, "carol", bob)

	byPerson := e.askPending(carol, billingWrite("carol"))
	byToken := e.askPending(mgmt, billingWrite("carol"))
	e.approve(bob, byPerson)
	e.approve(bob, byToken)

	op.SetGroups("carol", []string{"developers"})
	carol = op.SignIn(t, oidcop.CLIClientID, "carol")
	for _, id := range []string{byPerson, byToken} {
		status, body := e.send(e.mgmtURL, carol, "POST", "/v1/requests/"+id+"/claim", nil)
		if status == http.StatusCreated {
			remember(decode[RequestOutcome](t, body).Secret)
		}
		wantRefusal(t, "a developer claims a production write", status, body, http.StatusForbidden, "developer_production_write")
	}
	e.wantRefusedAction("token.claimed", "carol", "developer_production_write")
}

// Rotation hands out a new secret: a holder who has become a developer
// does not renew a production write, as a person or with her management
// token (claimed once she was a developer, so it carries the group).
func TestRotationAsksWithTheRotatorsGroups(t *testing.T) {
	t.Parallel()
	e, op := personRulesEnv(t)
	carol := op.SignIn(t, oidcop.CLIClientID, "carol")
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")
	id := e.askPending(carol, billingWrite("carol"))
	e.approve(bob, id)
	claimed := e.claimOutcome(carol, id)
	secret, tokenID := claimed.Secret, claimed.Token.ID
	if r := call(t, "POST", e.gateURL+"/billing/invoices", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("the approved write: %d %s", r.status, r.body)
	}

	op.SetGroups("carol", []string{"developers"})
	carol = op.SignIn(t, oidcop.CLIClientID, "carol")
	mgmt := e.managementToken(carol, "carol", bob)
	for _, try := range []struct{ what, credential string }{{"as a person", carol}, {"with her management token", mgmt}} {
		what := try.what
		status, body := e.send(e.mgmtURL, try.credential, "POST", "/v1/tokens/"+tokenID+"/rotate", map[string]string{"grace": "0s"})
		if status == http.StatusCreated {
			remember(decode[IssuedToken](t, body).Secret)
		}
		wantRefusal(t, "a developer rotates a production write "+what, status, body, http.StatusForbidden, "developer_production_write")
	}
}

// Nobody else looks at an automatic approval: a person the directory does
// not know, asking to read a production service, waits for an approver.
func TestAutoApprovalNeverCoversProductionForStrangers(t *testing.T) {
	t.Parallel()
	e, op := personRulesEnv(t)
	carol := op.SignIn(t, oidcop.CLIClientID, "carol")
	spec := map[string]any{"owner": "carol", "purpose": "read invoices", "scopes": []string{"billing:read"},
		"services": []string{"billing"}, "ttl": "1h", "max_uses": 1000}
	status, body := e.send(e.mgmtURL, carol, "POST", "/v1/requests", spec)
	out := decode[RequestOutcome](t, body)
	if out.Secret != "" {
		remember(out.Secret)
	}
	if status != http.StatusAccepted || out.Secret != "" || out.Request.Status != "pending" {
		t.Fatalf("a stranger's production read: %d %s, want 202 pending", status, body)
	}

	// The same request on a service whose directory entry opts in is
	// approved at once.
	dir := copyPolicies(t, map[string]string{"tokengate/directory/data.json": `{
		"services": {"billing": {"environment": "production", "auto_approve": true}}
	}`})
	newEnvReusing(e, envOptions{policyDir: dir, appOptions: withOIDC(op)})
	status, body = e.send(e.mgmtURL, carol, "POST", "/v1/requests", spec)
	out = decode[RequestOutcome](t, body)
	if out.Secret != "" {
		remember(out.Secret)
	}
	if status != http.StatusCreated || out.Secret == "" || out.Token.ApprovedBy != "policy:just-in-time" {
		t.Fatalf("an opted-in production read: %d %s, want 201", status, body)
	}
}

// wantRefusedAction finds the refused action line msg by actor and checks
// it lists reason among its reasons.
func (e *env) wantRefusedAction(msg, actor, reason string) {
	e.t.Helper()
	for _, l := range e.auditLines() {
		if l["msg"] != msg || l["actor"] != actor || l["outcome"] != "refused" {
			continue
		}
		if slices.Contains(anyStrings(l["reasons"]), reason) {
			return
		}
	}
	e.t.Errorf("no refused %s line by %s with reason %s", msg, actor, reason)
}

// A management token claimed before its holder joined developers takes
// her new groups at her next sign-in: from then on it asks, and claims,
// as the developer she is.
func TestSignInRefreshesTheGroupsOnHerManagementTokens(t *testing.T) {
	t.Parallel()
	e, op := personRulesEnv(t)
	carol := op.SignIn(t, oidcop.CLIClientID, "carol")
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")
	mgmt := e.managementToken(carol, "carol", bob)
	pending := e.askPending(mgmt, billingWrite("carol"))
	e.approve(bob, pending)

	op.SetGroups("carol", []string{"developers"})
	carol = op.SignIn(t, oidcop.CLIClientID, "carol")
	if status, body := e.send(e.mgmtURL, carol, "GET", "/v1/requests?status=pending", nil); status != http.StatusOK {
		t.Fatalf("carol signs in: %d %s", status, body)
	}
	status, body := e.mgmt(mgmt, "POST", "/v1/requests", billingWrite("carol"))
	wantRefusal(t, "her management token asks for a production write after her sign-in as a developer", status, body, http.StatusForbidden, "developer_production_write")
	status, body = e.mgmt(mgmt, "POST", "/v1/requests/"+pending+"/claim", nil)
	if status == http.StatusCreated {
		remember(decode[RequestOutcome](t, body).Secret)
	}
	wantRefusal(t, "her management token claims a production write", status, body, http.StatusForbidden, "developer_production_write")
}
