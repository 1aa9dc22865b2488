package caddymodule

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// browserTools finds node with playwright-core (NODE_PATH) and Debian's
// Chromium; without them the test is skipped, except under CI=true, where
// .ci/run installs them and their absence is a failure.
func browserTools(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		missing = "Debian's chromium (apt-get install chromium)"
	} else if err := exec.Command("node", "-e", "require('playwright-core')").Run(); err != nil {
		missing = "node with playwright-core on NODE_PATH (npm install playwright-core)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("the browser tests need %s", missing)
	}
	t.Skipf("the browser tests need %s", missing)
}

// TestConsoleInABrowser drives the console in Chromium against this Caddy
// and the real provider: sign-in on the provider's own login page, a
// security key registered on Chromium's virtual authenticator, an approval
// without a reason refused, a production write approved with a step-up
// bound to the request, a cross-site form post refused, and the
// requester offered no decision on her own request.
func TestConsoleInABrowser(t *testing.T) {
	browserTools(t)
	realTime(t)
	users := append(oidcop.DefaultUsers(), oidcop.User{Username: "carol", Email: "carol@example.com", EmailVerified: true})
	op := oidcop.Start(t, oidcop.Options{Users: users})
	dir := copyPolicies(t, map[string]string{"tokengate/directory/data.json": `{
		"groups": {"approvers": ["bob"]},
		"services": {"billing": {"environment": "production"}, "search": {"environment": "staging"}}
	}`})
	e := newEnv(t, envOptions{policyDir: dir, appOptions: withOIDC(op)})
	carol := op.SignIn(t, oidcop.CLIClientID, "carol")
	toApprove := e.askPending(carol, billingWrite("carol"))
	other := e.askPending(carol, billingWrite("carol"))

	shots := os.Getenv("TOKENGATE_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	cfg, _ := json.Marshal(map[string]string{
		"console":  "http://localhost:" + strconv.Itoa(mgmtPort),
		"password": oidcop.Password, "approver": "bob", "requester": "carol",
		"request": toApprove, "other": other, "shots": shots,
	})
	cfgFile := filepath.Join(t.TempDir(), "e2e.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "testdata/console_e2e.js", cfgFile)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the browser run failed: %v\n%s", err, out)
	}
	var seen struct {
		BobLoginPage string `json:"bob_login_page"`
		Inbox        string
		Cookies      []struct {
			Name, SameSite, Path string
			HTTPOnly             bool `json:"httpOnly"`
			Secure               bool
		}
		Credentials         int
		DenyWithoutReason   string `json:"deny_without_reason"`
		AfterApproval       string `json:"after_approval"`
		CrossSiteStatus     int    `json:"cross_site_status"`
		OwnRequestHasDecide bool   `json:"own_request_has_decide"`
		Errors              []string
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("the browser run printed %q: %v", out, err)
	}
	if seen.BobLoginPage != op.Issuer() {
		t.Errorf("sign-in happened at %q, want the provider %s", seen.BobLoginPage, op.Issuer())
	}
	if !strings.Contains(seen.Inbox, toApprove) {
		t.Errorf("bob's inbox lacks carol's request %s: %q", toApprove, seen.Inbox)
	}
	session := false
	for _, c := range seen.Cookies {
		if c.Name == "tokengate_console" {
			session = c.HTTPOnly && c.SameSite == "Strict" && c.Path == "/"
		}
	}
	if !session {
		t.Errorf("session cookie: %+v, want tokengate_console HttpOnly SameSite=Strict on /", seen.Cookies)
	}
	if seen.Credentials != 1 {
		t.Errorf("the virtual authenticator holds %d credentials, want 1", seen.Credentials)
	}
	if !strings.Contains(seen.DenyWithoutReason, "reason_required") {
		t.Errorf("a decision without a reason: %q", seen.DenyWithoutReason)
	}
	if seen.CrossSiteStatus != http.StatusUnauthorized && seen.CrossSiteStatus != http.StatusForbidden {
		t.Errorf("a cross-site form post: %d, want 401 or 403", seen.CrossSiteStatus)
	}
	if seen.OwnRequestHasDecide {
		t.Error("carol is offered a decision on her own request")
	}
	if len(seen.Errors) > 0 {
		t.Errorf("errors in the browser: %v", seen.Errors)
	}
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")
	for id, want := range map[string]string{toApprove: "approved", other: "pending"} {
		status, body := e.send(mgmtURL, bob, "GET", "/v1/requests/"+id, nil)
		if v := decode[RequestView](t, body); status != http.StatusOK || v.Status != want {
			t.Errorf("request %s: %d %s, want %s", id, status, body, want)
		}
	}
	approved := false
	for _, l := range e.auditLines() {
		if l["msg"] == "token.approved" && l["actor"] == "bob" && l["outcome"] == "success" && l["token_request_id"] == toApprove {
			approved = true
		}
	}
	if !approved {
		t.Error("no token.approved action line by bob for the console's approval")
	}
}
