package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// These tests sign in from the shell the way a person does: the built
// binary's `caddy tokengate login` against a real OpenID provider (the
// test plays the browser over HTTP), then remote commands against a real
// gateway with the sign-in the CLI kept.

// signInGateway starts a gateway whose tokengate options name op as the
// oidc issuer, and returns it with its management API URL.
func signInGateway(t *testing.T, op *oidcop.OP) (*caddyproc.Process, string) {
	t.Helper()
	dir := t.TempDir()
	up := startUpstream(t)
	store := "store bolt " + dir + "/tokens.db"
	p, port := startGateway(t, dir, up.Listener.Addr().String(), func(cfg string) string {
		return strings.Replace(cfg, store, store+"\n\t\toidc "+op.Issuer()+" {\n\t\t\taudience "+oidcop.CLIClientID+"\n\t\t}", 1)
	})
	return p, fmt.Sprintf("http://127.0.0.1:%d", port+1)
}

// noCredential keeps a developer's own TOKENGATE_* out of the CLI calls.
var noCredential = []string{"TOKENGATE_TOKEN=", "TOKENGATE_API="}

// background is a CLI call still running, its stderr readable meanwhile.
type background struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	stdout bytes.Buffer
	done   chan error
}

func (b *background) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.Write(p)
}

func (b *background) errText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.String()
}

func startCLI(t *testing.T, p *caddyproc.Process, args ...string) *background {
	t.Helper()
	b := &background{done: make(chan error, 1)}
	b.cmd = exec.Command(caddyproc.Binary(t), append([]string{"tokengate"}, args...)...)
	b.cmd.Dir = p.Dir
	b.cmd.Env = append(p.Env(), noCredential...)
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, b
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.cmd.Process.Kill() })
	go func() { b.done <- b.cmd.Wait() }()
	return b
}

// await returns the first submatch of re once stderr shows it.
func (b *background) await(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(b.errText()); m != nil {
			return m[1]
		}
		select {
		case err := <-b.done:
			t.Fatalf("the CLI ended (%v) before printing %s:\n%s", err, re, b.errText())
		default:
		}
	}
	t.Fatalf("the CLI never printed %s:\n%s", re, b.errText())
	return ""
}

func (b *background) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("the CLI failed: %v\n%s", err, b.errText())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the CLI never ended:\n%s", b.errText())
	}
	if b.stdout.Len() != 0 {
		t.Errorf("login printed on stdout: %q", b.stdout.String())
	}
}

var (
	authorizeLine = regexp.MustCompile(`(?m)^  (http://127\.0\.0\.1:\d+/auth\?\S+)$`)
	userCodeLine  = regexp.MustCompile(`(?m)^  ([A-Z0-9-]+)$`)
)

// loginCode runs `login --api` and plays the browser: the authorization
// URL the CLI printed, the OP's login form as user, the redirect back to
// the CLI's loopback listener.
func loginCode(t *testing.T, p *caddyproc.Process, op *oidcop.OP, apiURL, user string) string {
	t.Helper()
	b := startCLI(t, p, "login", "--api", apiURL, "--no-browser")
	authorize := b.await(t, authorizeLine)
	callback := op.Authorize(t, authorize, user)
	if callback.Hostname() != "127.0.0.1" || callback.Path != "/callback" {
		t.Fatalf("the OP redirected to %s, not the loopback callback", callback.Redacted())
	}
	resp, err := http.Get(callback.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the CLI's callback answered %d", resp.StatusCode)
	}
	b.wait(t)
	return b.errText()
}

// credentials reads the sign-in file the CLI keeps under the process's
// XDG_CONFIG_HOME, checking its and its folder's modes.
func credentials(t *testing.T, p *caddyproc.Process) map[string]struct {
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	Subject      string `json:"subject"`
} {
	t.Helper()
	path := filepath.Join(p.Dir, "config", "tokengate", "credentials.json")
	for f, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", f, info.Mode().Perm(), want)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Sessions map[string]struct {
			IDToken      string `json:"id_token"`
			RefreshToken string `json:"refresh_token"`
			Subject      string `json:"subject"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Sessions
}

func tokengate(t *testing.T, p *caddyproc.Process, env []string, args ...string) (string, string, error) {
	t.Helper()
	return p.CLI(t, append(noCredential, env...), append([]string{"tokengate"}, args...)...)
}

func TestCLISignInWithTheCodeFlow(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	p, apiURL := signInGateway(t, op)

	// Before any sign-in, a remote command says how to get one.
	if _, stderr, err := tokengate(t, p, nil, "list", "--api", apiURL); err == nil || !strings.Contains(stderr, "caddy tokengate login --api "+apiURL) {
		t.Fatalf("list before login: %v %s", err, stderr)
	}

	// An ID token is a bearer credential: login will not fetch one for an
	// API it would then send it to in the clear.
	if _, stderr, err := tokengate(t, p, nil, "login", "--api", "http://gw.example.com", "--no-browser"); err == nil || !strings.Contains(stderr, "must be https") {
		t.Fatalf("login to a plain-http API: %v %s", err, stderr)
	}

	stderr := loginCode(t, p, op, apiURL, "alice")
	if !strings.Contains(stderr, "Signed in to "+apiURL+" as alice") {
		t.Fatalf("login: %s", stderr)
	}
	sessions := credentials(t, p)
	s, ok := sessions[apiURL]
	if !ok || s.Subject != "alice" || s.IDToken == "" || s.RefreshToken == "" {
		t.Fatalf("stored sign-in for %s: %v (subject %q)", apiURL, ok, s.Subject)
	}
	if strings.Contains(stderr, s.IDToken) || strings.Contains(stderr, s.RefreshToken) {
		t.Fatal("login printed a token")
	}

	// Remote commands now call as alice with her ID token.
	stdout, stderr, err := tokengate(t, p, nil, "list", "--api", apiURL)
	if err != nil {
		t.Fatalf("list with the sign-in: %v\n%s", err, stderr)
	}
	if strings.Contains(stdout+stderr, s.IDToken) {
		t.Fatal("list printed the ID token")
	}

	// TOKENGATE_TOKEN wins over the sign-in: automation keeps the
	// credential it was given, here one the gateway refuses.
	if _, stderr, err := tokengate(t, p, []string{"TOKENGATE_TOKEN=tg_not_a_real_token"}, "list", "--api", apiURL); err == nil || !strings.Contains(stderr, "token_malformed") {
		t.Fatalf("list with a bad TOKENGATE_TOKEN: %v %s (want the gateway's refusal of that token)", err, stderr)
	}

	// logout forgets the tokens (and revokes the refresh token at the OP).
	if _, stderr, err := tokengate(t, p, nil, "logout", "--api", apiURL); err != nil || !strings.Contains(stderr, "Signed out of "+apiURL) {
		t.Fatalf("logout: %v %s", err, stderr)
	}
	if _, still := credentials(t, p)[apiURL]; still {
		t.Fatal("the sign-in is still stored after logout")
	}
	if _, stderr, err := tokengate(t, p, nil, "list", "--api", apiURL); err == nil || !strings.Contains(stderr, "caddy tokengate login") {
		t.Fatalf("list after logout: %v %s", err, stderr)
	}
}

func TestCLISignInWithTheDeviceGrant(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	p, apiURL := signInGateway(t, op)

	b := startCLI(t, p, "login", "--api", apiURL, "--device")
	code := b.await(t, userCodeLine)
	if !strings.Contains(b.errText(), op.Issuer()+"/device") {
		t.Fatalf("no verification URI printed:\n%s", b.errText())
	}
	op.ApproveDevice(t, code, "bob")
	b.wait(t)
	if s := credentials(t, p)[apiURL]; s.Subject != "bob" || s.IDToken == "" {
		t.Fatalf("stored sign-in subject %q", s.Subject)
	}
	if _, stderr, err := tokengate(t, p, nil, "list", "--api", apiURL); err != nil {
		t.Fatalf("list with the device sign-in: %v\n%s", err, stderr)
	}
	// logout without an API forgets every sign-in.
	if _, stderr, err := tokengate(t, p, nil, "logout"); err != nil || !strings.Contains(stderr, "Signed out of "+apiURL) {
		t.Fatalf("logout: %v %s", err, stderr)
	}
	if left := credentials(t, p); len(left) != 0 {
		t.Fatalf("%d sign-ins left after logout", len(left))
	}
}

// ID tokens that live 90 seconds are always within the CLI's refresh
// margin: every remote command refreshes first, saves the new tokens and
// calls with the new ID token.
func TestCLISignInRefreshesAnExpiringIDToken(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{Clients: []oidcop.Client{{ID: oidcop.CLIClientID, IDTokenLifetime: 90 * time.Second}}})
	p, apiURL := signInGateway(t, op)
	loginCode(t, p, op, apiURL, "alice")
	before := credentials(t, p)[apiURL]

	if _, stderr, err := tokengate(t, p, nil, "list", "--api", apiURL); err != nil {
		t.Fatalf("list: %v\n%s", err, stderr)
	}
	after := credentials(t, p)[apiURL]
	if after.IDToken == before.IDToken || after.RefreshToken == before.RefreshToken || after.Subject != "alice" {
		t.Fatalf("the sign-in was not refreshed (new ID token %v, new refresh token %v, subject %q)",
			after.IDToken != before.IDToken, after.RefreshToken != before.RefreshToken, after.Subject)
	}
	// The OP rotates refresh tokens: the spent one is gone from the file,
	// and the next command refreshes again with the new one.
	if _, stderr, err := tokengate(t, p, nil, "list", "--api", apiURL); err != nil {
		t.Fatalf("second list: %v\n%s", err, stderr)
	}
	if again := credentials(t, p)[apiURL]; again.RefreshToken == after.RefreshToken {
		t.Fatal("the second command did not refresh")
	}
}

// A gateway without oidc has no sign-in, and login says so; --issuer and
// --client-id sign in without asking the gateway, but the gateway, which
// trusts no issuer, still refuses the ID token.
func TestCLILoginAgainstAGatewayWithoutOIDC(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	dir := t.TempDir()
	up := startUpstream(t)
	p, port := startGateway(t, dir, up.Listener.Addr().String(), nil)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", port+1)

	if _, stderr, err := tokengate(t, p, nil, "login", "--api", apiURL, "--no-browser"); err == nil || !strings.Contains(stderr, "no sign-in") {
		t.Fatalf("login without oidc: %v %s", err, stderr)
	}

	b := startCLI(t, p, "login", "--api", apiURL, "--no-browser", "--issuer", op.Issuer(), "--client-id", oidcop.CLIClientID)
	resp, err := http.Get(op.Authorize(t, b.await(t, authorizeLine), "alice").String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b.wait(t)
	if s := credentials(t, p)[apiURL]; s.Subject != "alice" {
		t.Fatalf("stored sign-in subject %q", s.Subject)
	}
	if _, stderr, err := tokengate(t, p, nil, "list", "--api", apiURL); err == nil {
		t.Fatalf("a gateway without oidc accepted an ID token: %s", stderr)
	}
}
