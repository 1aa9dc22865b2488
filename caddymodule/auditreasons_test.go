package caddymodule

import (
	"net/http"
	"slices"
	"testing"
)

// A refused self-approval says so in reasons, not only in free text: the
// action line and the call line list every reason the admin policy gave.
func TestRefusedActionsListEveryReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.bootstrap()
	id := e.askPending(e.requester, writeRequest(nil))
	status, body := e.mgmt(e.requester, "POST", "/v1/requests/"+id+"/approve", map[string]string{"reason": "mine"})
	if status != http.StatusForbidden {
		t.Fatalf("self-approval: %d %s", status, body)
	}
	want := []string{"scope_missing", "self_approval"}
	var action map[string]any
	for _, l := range e.auditLines() {
		if l["msg"] == "token.approved" && l["outcome"] == "refused" && l["token_request_id"] == id {
			action = l
		}
	}
	if got := anyStrings(action["reasons"]); !slices.Equal(got, want) {
		t.Errorf("refused approval's action line has reasons %v, want %v", got, want)
	}
	if got := anyStrings(e.auditFor("/v1/requests/" + id + "/approve")["reasons"]); !slices.Equal(got, want) {
		t.Errorf("refused approval's call line has reasons %v, want %v", got, want)
	}
}

// A call refused before any token was found has no token, owner, holder,
// purpose or scopes: its line leaves them out instead of writing them
// empty.
func TestRefusedCallsLeaveOutWhatIsUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if r := call(t, "GET", e.gateURL+"/billing/no-token"); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.status)
	}
	line := e.auditFor("/billing/no-token")
	for _, field := range []string{"token_id", "owner", "held_by", "purpose", "scopes", "decision_id", "policy_rev"} {
		if v, ok := line[field]; ok {
			t.Errorf("%s written as %#v on a call refused before a token was found", field, v)
		}
	}
	if line["decision"] != "deny" || !slices.Equal(anyStrings(line["reasons"]), []string{"token_missing"}) {
		t.Errorf("line %v", line)
	}
}
