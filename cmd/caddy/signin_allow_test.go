package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// A person outside the oidc allow_domains and allow_groups is told so by
// login, which keeps no session for them, and by any later command made
// with their ID token; people inside sign in as before.
func TestCLISignInOutsideAllowDomainsAndGroups(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{Users: []oidcop.User{
		{Username: "alice", Email: "alice@example.com", EmailVerified: true},
		{Username: "mallory", Email: "mallory@example.net", EmailVerified: true},
	}})
	dir := t.TempDir()
	up := startUpstream(t)
	store := "store bolt " + dir + "/tokens.db"
	p, port := startGateway(t, dir, up.Listener.Addr().String(), func(cfg string) string {
		return strings.Replace(cfg, store, store+"\n\t\toidc "+op.Issuer()+" {\n\t\t\taudience "+oidcop.CLIClientID+
			"\n\t\t\tallow_domains example.com\n\t\t\tallow_groups contractors\n\t\t}", 1)
	})
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", port+1)

	b := startCLI(t, p, "login", "--api", apiURL, "--no-browser")
	callback := op.Authorize(t, b.await(t, authorizeLine), "mallory")
	resp, err := http.Get(callback.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-b.done:
		if err == nil || !strings.Contains(b.errText(), "does not let you sign in (signin_not_allowed)") {
			t.Fatalf("login of a person outside allow_domains: %v\n%s", err, b.errText())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("login never ended:\n%s", b.errText())
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "config", "tokengate", "credentials.json")); err == nil {
		if _, kept := credentials(t, p)[apiURL]; kept {
			t.Error("login kept a session the gateway refuses")
		}
	}

	// A command with the ID token itself (as automation passes one).
	idToken := op.SignIn(t, oidcop.CLIClientID, "mallory")
	if _, stderr, err := tokengate(t, p, []string{"TOKENGATE_TOKEN=" + idToken}, "list", "--api", apiURL); err == nil ||
		!strings.Contains(stderr, "does not let you sign in (signin_not_allowed)") {
		t.Fatalf("list as mallory: %v %s", err, stderr)
	}

	if stderr := loginCode(t, p, op, apiURL, "alice"); !strings.Contains(stderr, "Signed in to "+apiURL+" as alice") {
		t.Fatalf("login of a person in allow_domains: %s", stderr)
	}
	if _, stderr, err := tokengate(t, p, nil, "list", "--api", apiURL); err != nil {
		t.Fatalf("list as alice: %v %s", err, stderr)
	}
}
