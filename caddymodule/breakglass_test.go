package caddymodule

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/manage"
)

// Lost bootstrap secrets come back only in two audited steps on the admin
// endpoint, through real Caddy: start says nothing of the code (it is in a
// 0600 file in Caddy's data folder), confirm refuses before the delay and
// with a wrong code, then issues two new management tokens that work on
// the management API. Every step leaves an audit line; bootstrap itself
// still refuses to run twice.
func TestBreakGlassRecoversLostBootstrapSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.bootstrap() // and then, say, both secrets are lost
	o := loadOpenAPI(t)
	// admin calls the break-glass routes and checks each answer against
	// the OpenAPI description.
	admin := func(method, path string, body any) (int, []byte) {
		t.Helper()
		r := callAt(t, e.adminURL, "", method, path, body)
		o.check(method, path, r)
		return r.status, r.body
	}
	status, body := e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": "carol", "approver": "dave"})
	wantRefusal(t, "a second bootstrap", status, body, http.StatusConflict, "already_bootstrapped")

	status, body = admin("POST", "/tokengate/break-glass", map[string]string{"requester": "carol", "approver": "carol", "reason": "lost"})
	wantRefusal(t, "one person for both roles", status, body, http.StatusForbidden, "self_approval")
	status, body = admin("POST", "/tokengate/break-glass", map[string]string{"requester": "carol", "approver": "dave"})
	wantRefusal(t, "no reason", status, body, http.StatusBadRequest, "reason_required")

	status, body = admin("POST", "/tokengate/break-glass", map[string]string{"requester": "carol", "approver": "dave", "reason": "both bootstrap secrets lost, INC-4711"})
	if status != http.StatusAccepted {
		t.Fatalf("start: %d %s", status, body)
	}
	var pending api.BreakGlassPending
	if err := json.Unmarshal(body, &pending); err != nil || !strings.HasPrefix(pending.ID, "bg_") {
		t.Fatalf("start answer %s", body)
	}
	info, err := os.Stat(pending.CodeFile)
	if err != nil || info.Mode().Perm() != 0o600 || !strings.HasPrefix(pending.CodeFile, filepath.Join(e.appDataDir(), "tokengate", "break-glass")) {
		t.Fatalf("code file %s: %v %v", pending.CodeFile, info, err)
	}
	raw, _ := os.ReadFile(pending.CodeFile)
	code := strings.TrimSpace(string(raw))
	if len(code) < 20 || strings.Contains(string(body), code) {
		t.Fatalf("the code %q is short, or in the start answer %s", code, body)
	}
	status, body = admin("POST", "/tokengate/break-glass", map[string]string{"requester": "erin", "approver": "frank", "reason": "again"})
	wantRefusal(t, "a second start", status, body, http.StatusConflict, "break_glass_pending")

	confirm := func(id, code string) (int, []byte) {
		return admin("POST", "/tokengate/break-glass/"+id+"/confirm", map[string]string{"code": code})
	}
	status, body = confirm(pending.ID, code)
	wantRefusal(t, "confirm at once", status, body, http.StatusConflict, "break_glass_too_early")
	e.advance(breakglass.Delay)
	status, body = confirm(pending.ID, "not-the-code")
	wantRefusal(t, "a wrong code", status, body, http.StatusForbidden, "break_glass_code_invalid")
	status, body = confirm("bg_unknown", code)
	wantRefusal(t, "another id", status, body, http.StatusNotFound, "break_glass_unknown")

	status, body = confirm(pending.ID, code)
	if status != http.StatusCreated {
		t.Fatalf("confirm: %d %s", status, body)
	}
	var res api.BootstrapResult
	if err := json.Unmarshal(body, &res); err != nil || len(res.Tokens) != 2 {
		t.Fatalf("confirm answer %s", body)
	}
	var approver string
	for _, tok := range res.Tokens {
		remember(tok.Secret)
		if tok.Token.Owner == "dave" && slices.Contains(tok.Token.Scopes, "tokens:approve") {
			approver = tok.Secret
		}
	}
	if status, body := e.mgmt(approver, "GET", "/v1/tokens", nil); status != http.StatusOK {
		t.Errorf("the new approver token on the management API: %d %s", status, body)
	}
	if _, err := os.Stat(pending.CodeFile); !os.IsNotExist(err) {
		t.Errorf("the spent code file is still there: %v", err)
	}
	status, body = confirm(pending.ID, code)
	wantRefusal(t, "the code again", status, body, http.StatusNotFound, "break_glass_unknown")

	// The audit trail tells the whole story.
	var started, refused, confirmed, issued int
	for _, l := range e.auditLines() {
		reason, _ := l["reason"].(string)
		switch {
		case l["msg"] == "break_glass.started" && l["outcome"] == "success" && strings.Contains(reason, pending.ID) && strings.Contains(reason, "INC-4711"):
			started++
		case l["msg"] == "break_glass.confirmed" && l["outcome"] == "refused":
			refused++
		case l["msg"] == "break_glass.confirmed" && l["outcome"] == "success" && l["actor"] == manage.LocalOperator:
			confirmed++
		case l["msg"] == "token.bootstrap" && strings.HasPrefix(reason, "break-glass "+pending.ID+" (both bootstrap secrets lost, INC-4711): "):
			issued++
		}
		if strings.Contains(reason, code) {
			t.Errorf("an audit line holds the code: %v", l)
		}
	}
	if started != 1 || refused != 4 || confirmed != 1 || issued != 2 {
		t.Errorf("audit lines: %d started, %d refused confirmations, %d confirmed, %d token.bootstrap; want 1, 4, 1, 2", started, refused, confirmed, issued)
	}
}
