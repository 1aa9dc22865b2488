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
	e := newEnv(t, envOptions{decisionCache: 1000})
	old, oldID := e.issue(billingReader(map[string]any{"max_uses": 3}))
	if r := call(t, "GET", gateURL+"/billing/budget-0", bearer(old)...); r.status != 200 {
		t.Fatalf("first call: %d %s", r.status, r.body)
	}
	status, body := e.admin("POST", "/tokengate/tokens/"+oldID+"/rotate", map[string]string{"grace": "5m"})
	if status != http.StatusCreated {
		t.Fatalf("rotate: %d %s", status, body)
	}
	var issued IssuedToken
	if err := json.Unmarshal(body, &issued); err != nil {
		t.Fatal(err)
	}
	remember(issued.Secret)

	secrets := []string{old, issued.Secret}
	var statuses []int
	for i := range 6 {
		path := fmt.Sprintf("/billing/budget-%d", i+1)
		r := call(t, "GET", gateURL+path, bearer(secrets[i%2])...)
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
