package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// TestRotationKeepsTheBudget: a max_uses 3 token used once and rotated has
// 2 calls left in all during the grace window, whichever secret makes them;
// then both secrets are used up.
func TestRotationKeepsTheBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	old, oldID := e.issue(billingReader(map[string]any{"max_uses": 3}))
	if r := call(t, "GET", e.gateURL+"/billing/budget-0", bearer(old)...); r.status != 200 {
		t.Fatalf("first call: %d %s", r.status, r.body)
	}
	issued := e.rotate(oldID, "5m")

	secrets := []string{old, issued.Secret}
	var statuses []int
	for i := range 6 {
		path := fmt.Sprintf("/billing/budget-%d", i+1)
		r := call(t, "GET", e.gateURL+path, bearer(secrets[i%2])...)
		statuses = append(statuses, r.status)
		switch {
		case i < 2 && r.status != 200:
			t.Errorf("call %d (%s secret) within the budget: %d %s", i+1, []string{"old", "new"}[i%2], r.status, r.body)
		case i >= 2 && (r.status != 401 || r.reason != "uses_exhausted"):
			t.Errorf("call %d (%s secret) past max_uses 3: %d %s", i+1, []string{"old", "new"}[i%2], r.status, r.body)
		}
		if r.status == 200 {
			if line := e.auditFor(path); line["token_id"] != []string{oldID, issued.Token.ID}[i%2] {
				t.Errorf("call %d audited as token %v", i+1, line["token_id"])
			}
		}
	}
	if t.Failed() {
		t.Fatalf("statuses after rotation, alternating old and new secret: %v", statuses)
	}
	if got := len(e.upstream.received("/billing/budget-3")) + len(e.upstream.received("/billing/budget-4")); got != 0 {
		t.Fatalf("%d calls past the budget reached the upstream", got)
	}
}

// TestRevokingTheSuccessorStopsTheOldSecret: during a rotation's grace the
// old secret carries the same grants, so revoking the new token revokes
// the old one too; otherwise the leaked secret a rotation meant to retire
// keeps working after the revoke.
func TestRevokingTheSuccessorStopsTheOldSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	old, oldID := e.issue(billingReader(nil))
	issued := e.rotate(oldID, "5m")
	if r := call(t, "GET", e.gateURL+"/billing/grace", bearer(old)...); r.status != 200 {
		t.Fatalf("old secret within grace: %d %s", r.status, r.body)
	}
	if status, body := e.admin("POST", "/tokengate/tokens/"+issued.Token.ID+"/revoke", map[string]string{"reason": "whole chain leaked"}); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	for name, secret := range map[string]string{"old": old, "new": issued.Secret} {
		if r := call(t, "GET", e.gateURL+"/billing/after-revoke", bearer(secret)...); r.status != 401 || r.reason != "token_revoked" {
			t.Errorf("%s secret after the successor's revoke: %d %s", name, r.status, r.body)
		}
	}
	_, body := e.admin("GET", "/tokengate/tokens/"+oldID, nil)
	if v := decode[TokenView](t, body); v.State != "revoked" {
		t.Errorf("old token state %q, want revoked", v.State)
	}
}

// rotate rotates a token through the admin endpoint and returns its
// successor, whose secret the leak check then watches for.
func (e *env) rotate(id, grace string) IssuedToken {
	e.t.Helper()
	status, body := e.admin("POST", "/tokengate/tokens/"+id+"/rotate", map[string]string{"grace": grace})
	if status != http.StatusCreated {
		e.t.Fatalf("rotate: %d %s", status, body)
	}
	var issued IssuedToken
	if err := json.Unmarshal(body, &issued); err != nil {
		e.t.Fatal(err)
	}
	remember(issued.Secret)
	return issued
}
