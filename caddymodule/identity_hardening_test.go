package caddymodule

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
	"github.com/tokengate/caddy-tokengate/internal/token"
)

// signedFor is an ID token the OP signs with the test's claims for our
// client: sub, a verified email, issued now, valid an hour; extra adds
// or replaces claims.
func signedFor(t *testing.T, op *oidcop.OP, sub string, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": op.Issuer(), "aud": oidcop.CLIClientID, "sub": sub,
		"email": "alice@example.com", "email_verified": true, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	return op.Sign(t, claims)
}

// Who may sign in, through real Caddy with ID tokens of a real OP: the
// refusal is problem details with its reason and an audit line.
func TestSignInAllowListThroughCaddy(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{Users: []oidcop.User{
		{Username: "alice", Email: "alice@example.com", EmailVerified: true, Groups: []string{"developers"}},
		{Username: "mallory", Email: "mallory@example.net", EmailVerified: true},
		{Username: "carol", Email: "carol@example.net", EmailVerified: true, Groups: []string{"contractors"}},
		{Username: "dave", Email: "dave@example.com", EmailVerified: false},
	}})
	e := newEnv(t, envOptions{appOptions: "oidc " + op.Issuer() + " {\n\t\t\taudience " + oidcop.CLIClientID +
		"\n\t\t\tallow_domains example.com\n\t\t\tallow_groups contractors\n\t\t}"})
	tokens := e.mgmtURL + "/v1/tokens"

	for _, who := range []string{"alice", "carol"} {
		if r := call(t, "GET", tokens, bearer(op.SignIn(t, oidcop.CLIClientID, who))...); r.status != http.StatusOK {
			t.Errorf("%s may sign in: %d %s", who, r.status, r.body)
		}
	}
	for _, who := range []string{"mallory", "dave"} {
		idt := op.SignIn(t, oidcop.CLIClientID, who)
		wantCredentialRefused(t, who, call(t, "GET", tokens, bearer(idt)...), http.StatusForbidden, "signin_not_allowed", idt)
	}
	if e.personLine("deny", "signin_not_allowed", "") == nil {
		t.Error("no audit line for a refused sign-in")
	}
}

// azp and principals, through real Caddy with ID tokens the real OP signs.
func TestIDTokenClaimsCheckedThroughCaddy(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	e := newEnv(t, envOptions{appOptions: withOIDC(op)})
	tokens := e.mgmtURL + "/v1/tokens"

	// A token issued to another client that names ours among its
	// audiences (what a CI job choosing its audience could get).
	for what, claims := range map[string]map[string]any{
		"azp of another client":     {"aud": []string{"ci-job", oidcop.CLIClientID}, "azp": "ci-job"},
		"several audiences, no azp": {"aud": []string{"ci-job", oidcop.CLIClientID}},
	} {
		idt := signedFor(t, op, "alice", claims)
		wantCredentialRefused(t, what, call(t, "GET", tokens, bearer(idt)...), http.StatusUnauthorized, "id_token_azp", idt)
	}
	if e.personLine("deny", "id_token_azp", "") == nil {
		t.Error("no audit line for a refused azp")
	}
	ok := signedFor(t, op, "alice", map[string]any{"aud": []string{"ci-job", oidcop.CLIClientID}, "azp": oidcop.CLIClientID})
	if r := call(t, "GET", tokens, bearer(ok)...); r.status != http.StatusOK {
		t.Errorf("several audiences with azp ours: %d %s", r.status, r.body)
	}

	// Refused principals get problem details, an audit line, and reach
	// no log.
	secret := token.NewSecret()
	for _, sub := range []string{
		"policy:just-in-time", "local-operator ", "local-operator", "workload:github:repo:octo/app",
		"\x1b[2Jroot", "root\x00", "alice\u202e", "ali\u200bce", " alice", secret,
	} {
		idt := signedFor(t, op, sub, nil)
		wantCredentialRefused(t, strconv.Quote(sub), call(t, "GET", tokens, bearer(idt)...), http.StatusUnauthorized, "principal_invalid", idt)
	}
	if e.personLine("deny", "principal_invalid", "") == nil {
		t.Error("no audit line for a refused principal")
	}
	for _, name := range []string{"audit.log", "caddy.log", "access.log"} {
		b, _ := os.ReadFile(filepath.Join(e.dir, name))
		if strings.Contains(string(b), secret[3:]) || strings.Contains(string(b), "just-in-time") {
			t.Errorf("%s holds a refused principal", name)
		}
	}
}

// A key the provider withdrew stops verifying once the cached key set is
// stale: after the JWKS's max-age, or five minutes without one. No token
// names an unknown key here, so nothing else makes the gateway refetch.
// While the provider is down, the keys it last published keep verifying.
func TestKeysFollowTheProvider(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	op.SetKeysCacheControl("public, max-age=30")
	e := newEnv(t, envOptions{appOptions: withOIDC(op)})
	tokens := e.mgmtURL + "/v1/tokens"
	wantOK := func(what, idt string) {
		t.Helper()
		if r := call(t, "GET", tokens, bearer(idt)...); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", what, r.status, r.body)
		}
	}

	alice := op.SignIn(t, oidcop.CLIClientID, "alice")
	wantOK("before the withdrawal", alice)
	op.RotateKey(t) // the JWKS now lists only a new key
	e.advance(20 * time.Second)
	wantOK("within max-age", alice)
	e.advance(15 * time.Second)
	wantCredentialRefused(t, "withdrawn key after max-age", call(t, "GET", tokens, bearer(alice)...), http.StatusUnauthorized, "id_token_signature", alice)

	// The set fetched just now (max-age 30 s) goes stale; the next one
	// comes without Cache-Control.
	op.SetKeysCacheControl("")
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")
	e.advance(31 * time.Second)
	wantOK("the current key", bob)
	op.RotateKey(t)
	e.advance(4 * time.Minute)
	wantOK("within five minutes without max-age", bob)
	e.advance(2 * time.Minute)
	wantCredentialRefused(t, "withdrawn key after five minutes", call(t, "GET", tokens, bearer(bob)...), http.StatusUnauthorized, "id_token_signature", bob)

	again := op.SignIn(t, oidcop.CLIClientID, "alice")
	e.advance(10 * time.Second)
	wantOK("the next key", again)
	op.SetDown(true)
	e.advance(6 * time.Minute)
	wantOK("stale keys while the provider is down", again)
	op.SetDown(false)
}

// oidc and a workload naming one issuer would let a CI job that picks its
// token's audience sign in as a person: Caddy refuses the config.
func TestOIDCAndWorkloadMayNotShareAnIssuer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newConfigEnv(t, dir, func(p envPorts) string { return pepperConfig(p, dir, "") })
	const issuer = "https://idp.example.com"
	for _, workloadIssuer := range []string{issuer, issuer + "/"} {
		app := "oidc " + issuer + " {\n\t\t\taudience people\n\t\t}\n\t\tworkload ci " + workloadIssuer + " {\n\t\t\taudience jobs\n\t\t}"
		status, body := e.loadConfig(t, pepperConfig(e.ports, dir, app))
		if status < 400 || !strings.Contains(body, "oidc and workload ci name the same issuer") {
			t.Errorf("workload issuer %s: %d %s, want the config refused", workloadIssuer, status, body)
		}
	}
}

// A workload whose subject a principal may not hold gets no token.
func TestExchangeRefusesAnInvalidSubject(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	e := newEnv(t, envOptions{appOptions: "workload github " + op.Issuer() + " {\n\t\t\taudience " + gatewayAudience + "\n\t\t}"})
	for _, sub := range []string{"policy:exchange", "repo:octo/app\x1b[2J", "repo:octo/app ", "local-operator"} {
		got := e.exchange(t, nil, exchangeForm(op.WorkloadToken(t, gatewayAudience, map[string]any{"sub": sub}), "billing:read", "billing"))
		if got.status != http.StatusBadRequest || got.err.Reason != "principal_invalid" {
			t.Errorf("subject %q: %d %s, want 400 principal_invalid", sub, got.status, got.body)
		}
	}
}
