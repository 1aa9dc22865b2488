package caddymodule

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// People act by role, through real Caddy with a real OpenID provider: a
// signed-in person asks for tokens and reads without any management
// token; the IdP's groups claim makes alice a developer (no production
// write) and bob an approver; a person outside approvers approves nothing.
func TestPeopleActByRole(t *testing.T) {
	t.Parallel()
	users := append(oidcop.DefaultUsers(), oidcop.User{Username: "carol", Email: "carol@example.com", EmailVerified: true})
	op := oidcop.Start(t, oidcop.Options{Users: users})
	dir := copyPolicies(t, map[string]string{"tokengate/directory/data.json": `{
		"services": {"billing": {"environment": "production"}, "search": {"environment": "staging"}}
	}`})
	e := newEnv(t, envOptions{policyDir: dir, appOptions: fmt.Sprintf("oidc %s {\n\t\t\taudience %s\n\t\t}", op.Issuer(), oidcop.CLIClientID)})
	alice := op.SignIn(t, oidcop.CLIClientID, "alice")
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")
	carol := op.SignIn(t, oidcop.CLIClientID, "carol")
	spec := func(scope, service string, extra map[string]any) map[string]any {
		s := map[string]any{"owner": "indexer", "purpose": "rebuild the index", "scopes": []string{scope}, "services": []string{service}, "ttl": "1h"}
		for k, v := range extra {
			s[k] = v
		}
		return s
	}

	// alice is in developers by her IdP groups: no production write.
	status, body := e.send(e.mgmtURL, alice, "POST", "/v1/requests", spec("billing:write", "billing", map[string]any{"ticket": "CHG-9"}))
	wantRefusal(t, "developer asks for a production write", status, body, http.StatusForbidden, "developer_production_write")

	// A staging write she may ask for, with no management token at all.
	status, body = e.send(e.mgmtURL, alice, "POST", "/v1/requests", spec("search:write", "search", nil))
	if status != http.StatusAccepted {
		t.Fatalf("person asks for a staging write: %d %s", status, body)
	}
	asked := decode[RequestOutcome](t, body)
	if asked.Request.RequestedBy != "alice" {
		t.Fatalf("request recorded for %q, want alice", asked.Request.RequestedBy)
	}
	if status, body := e.send(e.mgmtURL, carol, "GET", "/v1/requests/"+asked.Request.ID, nil); status != http.StatusOK {
		t.Fatalf("person reads a request: %d %s", status, body)
	}

	// carol is in no group: she approves nothing. bob's IdP group makes
	// him an approver.
	status, body = e.send(e.mgmtURL, carol, "POST", "/v1/requests/"+asked.Request.ID+"/approve", map[string]string{"reason": "fine"})
	wantRefusal(t, "person outside approvers approves", status, body, http.StatusForbidden, "approver_required")
	if status, body := e.send(e.mgmtURL, bob, "POST", "/v1/requests/"+asked.Request.ID+"/approve", map[string]string{"reason": "fine"}); status != http.StatusOK {
		t.Fatalf("approver approves: %d %s", status, body)
	}
	status, body = e.send(e.mgmtURL, alice, "POST", "/v1/requests/"+asked.Request.ID+"/claim", nil)
	claimed := decode[RequestOutcome](t, body)
	if status != http.StatusCreated || claimed.Secret == "" {
		t.Fatalf("requester claims: %d %s", status, body)
	}
	remember(claimed.Secret)
	if r := call(t, "POST", e.gateURL+"/search/docs", "X-Api-Key", claimed.Secret); r.status != http.StatusOK {
		t.Fatalf("the claimed token writes: %d %s", r.status, r.body)
	}
}
