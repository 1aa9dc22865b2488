package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/browser"
	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// consoleNodeCaddyfile is a node serving the management API and the
// console on every host name (the browser reaches it as localhost).
const consoleNodeCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	tokengate {
		store postgres "{DSN}"
		oidc {ISSUER} {
			audience {CLIENT}
		}
	}
	log default {
		exclude tokengate.audit
	}
	log audit {
		include tokengate.audit
		output file {DIR}/audit.log
		format json
	}
}

http://:{PORT} {
	bind 127.0.0.1
	tokengate_admin
}
`

// TestConsoleSessionOnEveryNode: a person signs in on one node and acts on
// another with the same session (it lives in the shared store), and
// signing out on one ends it on both.
func TestConsoleSessionOnEveryNode(t *testing.T) {
	t.Parallel()
	browser.Require(t)
	db := newTestDB(t)
	op := oidcop.Start(t, oidcop.Options{})
	start := func(name string) string {
		dir := filepath.Join(t.TempDir(), name)
		admin := fmt.Sprintf("127.0.0.1:%d", caddyproc.FreePort(t))
		port := caddyproc.FreePort(t)
		caddyfile := strings.NewReplacer("{ADMIN}", strings.TrimPrefix(admin, "127.0.0.1:"), "{DSN}", db.dsn, "{DIR}", dir,
			"{PORT}", fmt.Sprint(port), "{ISSUER}", op.Issuer(), "{CLIENT}", oidcop.CLIClientID).Replace(consoleNodeCaddyfile)
		caddyproc.Start(t, dir, admin, caddyfile)
		base := fmt.Sprintf("http://localhost:%d", port)
		eventually(t, 10*time.Second, name+" serves the console", func() (bool, string) {
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(base + "/console/")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusSeeOther, resp.Status
		})
		return base
	}
	a, b := start("a"), start("b")

	// alice (a developer) asks through node A's API with her ID token.
	alice := op.SignIn(t, oidcop.CLIClientID, "alice")
	body, _ := json.Marshal(map[string]any{"owner": "search-team", "purpose": "reindex", "scopes": []string{"search:write"},
		"services": []string{"search"}, "cidrs": []string{"10.0.0.0/8"}, "ttl": "1h"})
	req, _ := http.NewRequest("POST", a+"/v1/requests", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var asked struct{ Request struct{ ID string } }
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(answer, &asked) != nil {
		t.Fatalf("alice's request: %d %s", resp.StatusCode, answer)
	}

	var seen struct {
		ASignedIn     string `json:"a_signed_in"`
		BURL          string `json:"b_url"`
		BSignedIn     string `json:"b_signed_in"`
		BDecision     string `json:"b_decision"`
		AAfterSignout string `json:"a_after_signout"`
	}
	browser.Run(t, "testdata/console_twonodes.js", map[string]string{
		"a": a, "b": b, "user": "bob", "password": oidcop.Password, "request": asked.Request.ID,
	}, &seen)
	if !strings.Contains(seen.ASignedIn, "bob") || !strings.Contains(seen.BSignedIn, "bob") || !strings.HasPrefix(seen.BURL, b+"/console/") {
		t.Fatalf("signed in on A as %q; on B (%s) as %q", seen.ASignedIn, seen.BURL, seen.BSignedIn)
	}
	if strings.TrimSpace(seen.BDecision) != "denied" {
		t.Fatalf("the denial made on B: %q", seen.BDecision)
	}
	if seen.AAfterSignout != op.Issuer() {
		t.Fatalf("after signing out on B, node A sent the browser to %q, want the provider %s", seen.AAfterSignout, op.Issuer())
	}
}
