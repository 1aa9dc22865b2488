package caddymodule

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/browser"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// TestConsoleInABrowser drives the console in Chromium against this Caddy
// and the real provider: sign-in on the provider's own login page, a
// security key registered on Chromium's virtual authenticator, an approval
// without a reason refused, a production write approved with a step-up
// bound to the request, a cross-site form post refused, and the
// requester offered no decision on her own request.
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	browser.Require(t)
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

	cfg := map[string]string{
		"console":  "http://localhost:" + strconv.Itoa(e.ports.mgmt),
		"password": oidcop.Password, "approver": "bob", "requester": "carol",
		"request": toApprove, "other": other, "shots": browser.Shots(t),
	}
	var seen struct {
		BobLoginPage string `json:"bob_login_page"`
		Inbox        string
		Cookies      []struct {
			Name, SameSite, Path string
			HTTPOnly             bool `json:"httpOnly"`
			Secure               bool
		}
		Credentials          int
		DenyWithoutReason    string `json:"deny_without_reason"`
		AfterApproval        string `json:"after_approval"`
		CrossSiteStatus      int    `json:"cross_site_status"`
		OwnRequestHasDecide  bool   `json:"own_request_has_decide"`
		AssertionSent        bool   `json:"assertion_sent"`
		ReplaySame           string `json:"replay_same"`
		ReplayOther          string `json:"replay_other"`
		AskedStatus          string `json:"asked_status"`
		ClaimCacheControl    string `json:"claim_cache_control"`
		ClaimedPrefix        string `json:"claimed_prefix"`
		Secret               string
		ClaimAgain           string `json:"claim_again"`
		TokenPageShowsSecret bool   `json:"token_page_shows_secret"`
		AfterRevoke          string `json:"after_revoke"`
		RevokedToken         string `json:"revoked_token"`
		Errors               []string
	}
	browser.Run(t, "testdata/console_e2e.js", cfg, &seen)
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
	if seen.Secret != "" {
		remember(seen.Secret) // checked against every log when the test ends
	}
	if !seen.AssertionSent {
		t.Error("the step-up approval carried no assertion")
	}
	if !strings.HasPrefix(seen.ReplaySame, "403") || !strings.Contains(seen.ReplaySame, "step_up_replayed") {
		t.Errorf("the assertion replayed on its request: %.200s", seen.ReplaySame)
	}
	if !strings.HasPrefix(seen.ReplayOther, "403") || !strings.Contains(seen.ReplayOther, "step_up_mismatch") {
		t.Errorf("the assertion replayed on another request: %.200s", seen.ReplayOther)
	}
	if strings.TrimSpace(seen.AskedStatus) != "pending" {
		t.Errorf("carol's request asked in the console is %q, want pending", seen.AskedStatus)
	}
	if seen.ClaimCacheControl != "no-store" || seen.ClaimedPrefix != "tg_" {
		t.Errorf("claim: Cache-Control %q, secret starting %q", seen.ClaimCacheControl, seen.ClaimedPrefix)
	}
	if strings.HasPrefix(seen.ClaimAgain, "2") || strings.Contains(seen.ClaimAgain, "SHOWS") {
		t.Errorf("a second claim: %s", seen.ClaimAgain)
	}
	if seen.TokenPageShowsSecret {
		t.Error("the token's page shows the secret")
	}
	if strings.TrimSpace(seen.AfterRevoke) != "revoked" {
		t.Errorf("after revoking in the console the token is %q", seen.AfterRevoke)
	}
	if len(seen.Errors) > 0 {
		t.Errorf("errors in the browser: %v", seen.Errors)
	}
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")
	for id, want := range map[string]string{toApprove: "approved", other: "pending"} {
		status, body := e.send(e.mgmtURL, bob, "GET", "/v1/requests/"+id, nil)
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
