package caddymodule

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// withOIDC is the app option that makes op the issuer people sign in with.
func withOIDC(op *oidcop.OP) string {
	return fmt.Sprintf("oidc %s {\n\t\t\taudience %s\n\t\t}", op.Issuer(), oidcop.CLIClientID)
}

// wantCredentialRefused checks a refusal of a credential by the
// management API: problem details with the reason (wantProblem), the
// challenge on a 401, and not a byte of the credential echoed.
func wantCredentialRefused(t *testing.T, what string, r response, status int, reason, credential string) {
	t.Helper()
	wantProblem(t, what, r, status, reason)
	if status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: WWW-Authenticate %q", what, r.header.Get("WWW-Authenticate"))
	}
	if len(credential) > 20 && strings.Contains(string(r.body), credential[len(credential)-20:]) {
		t.Errorf("%s: the answer echoes the credential", what)
	}
}

// personLine finds the audit call line of the management call refused or
// allowed with reason (allow: empty reason) for actor.
func (e *env) personLine(decision, reason, actor string) map[string]any {
	for _, l := range e.auditLines() {
		if l["msg"] != "decision" || l["service"] != "tokengate-admin" || l["decision"] != decision {
			continue
		}
		rs, _ := l["reasons"].([]any)
		if reason != "" && (len(rs) != 1 || rs[0] != reason) {
			continue
		}
		if a, _ := l["actor"].(string); a == actor {
			return l
		}
	}
	return nil
}

func TestPersonSignsInToTheManagementAPI(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{Clients: []oidcop.Client{{ID: "another-app"}}})
	stranger := oidcop.Start(t, oidcop.Options{})
	e := newEnv(t, envOptions{appOptions: withOIDC(op)})
	tokens := e.mgmtURL + "/v1/tokens"

	alice := op.SignIn(t, oidcop.CLIClientID, "alice")
	const (
		personAllowed = `tokengate_service_decisions_total{result="allow",service="tokengate-admin"}`
		personRefused = `tokengate_decisions_total{reason="id_token_malformed",result="deny"}`
	)
	before := e.scrape(t)
	if r := call(t, "GET", tokens, bearer(alice)...); r.status != http.StatusOK {
		t.Fatalf("signed-in person lists tokens: %d %s", r.status, r.body)
	}
	if l := e.personLine("allow", "", "alice"); l == nil || l["status"] != float64(200) || l["path"] != "/v1/tokens" {
		t.Fatalf("no allow line for alice: %v", l)
	}
	// Counted like calls with a token, once the line is written.
	if d := e.scrape(t)[personAllowed] - before[personAllowed]; d != 1 {
		t.Errorf("%s grew by %v for a person's call, want 1", personAllowed, d)
	}
	before = e.scrape(t)
	wantCredentialRefused(t, "not a JWT", call(t, "GET", tokens, bearer("certainly-not-a-jwt")...), http.StatusUnauthorized, "id_token_malformed", "certainly-not-a-jwt")
	if e.personLine("deny", "id_token_malformed", "") == nil {
		t.Fatal("no deny line for a malformed ID token")
	}
	if d := e.scrape(t)[personRefused] - before[personRefused]; d != 1 {
		t.Errorf("%s grew by %v for a refused ID token, want 1", personRefused, d)
	}

	// Tokens that must not get in, each refused with its reason.
	claims := idTokenClaims(t, alice)
	header, _, sig := splitJWT(alice)
	forged := map[string]any{}
	for k, v := range claims {
		forged[k] = v
	}
	forged["sub"] = "bob"
	for _, c := range []struct {
		what, token, reason string
	}{
		{"wrong audience", op.SignIn(t, "another-app", "alice"), "id_token_audience"},
		{"wrong issuer", stranger.SignIn(t, oidcop.CLIClientID, "alice"), "id_token_issuer"},
		{"alg none", jwtSegment(map[string]string{"alg": "none"}) + "." + jwtSegment(claims) + ".", "id_token_algorithm"},
		{"forged claims", header + "." + jwtSegment(forged) + "." + sig, "id_token_signature"},
		{"not a JWT", "certainly-not-a-jwt", "id_token_malformed"},
	} {
		r := call(t, "GET", tokens, bearer(c.token)...)
		wantCredentialRefused(t, c.what, r, http.StatusUnauthorized, c.reason, c.token)
		if e.personLine("deny", c.reason, "") == nil {
			t.Errorf("%s: no deny line with reason %s", c.what, c.reason)
		}
	}

	// An hour later alice's token has expired.
	e.advance(61 * time.Minute)
	wantCredentialRefused(t, "expired", call(t, "GET", tokens, bearer(alice)...), http.StatusUnauthorized, "id_token_expired", alice)
	e.advance(-61 * time.Minute)

	// The provider rotates its key: a token signed with the new key is
	// accepted at once (the gateway refetches the keys), the old key's
	// tokens no longer are.
	op.RotateKey(t)
	e.advance(time.Minute) // the gateway spaces key fetches a few seconds apart
	bob := op.SignIn(t, oidcop.CLIClientID, "bob")
	if r := call(t, "GET", tokens, bearer(bob)...); r.status != http.StatusOK {
		t.Fatalf("token signed with the rotated-in key: %d %s", r.status, r.body)
	}
	wantCredentialRefused(t, "token of the dropped key", call(t, "GET", tokens, bearer(alice)...), http.StatusUnauthorized, "id_token_signature", alice)

	// The provider is down and a token names a key the gateway has not
	// seen: nobody can tell whether it is good, so 503, not 401, not 200.
	op.RotateKey(t)
	e.advance(time.Minute)
	unseen := op.SignIn(t, oidcop.CLIClientID, "alice")
	op.SetDown(true)
	wantCredentialRefused(t, "provider down", call(t, "GET", tokens, bearer(unseen)...), http.StatusServiceUnavailable, "issuer_unavailable", unseen)
	op.SetDown(false)

	// No ID token appears in any log.
	for _, name := range []string{"audit.log", "caddy.log", "access.log"} {
		b, _ := os.ReadFile(filepath.Join(e.dir, name))
		for _, tok := range []string{alice, bob, unseen} {
			_, _, s := splitJWT(tok)
			if strings.Contains(string(b), s) {
				t.Errorf("an ID token's signature is in %s", name)
			}
		}
	}
}

// The management token's own refusals are problem details too, with or
// without oidc.
func TestManagementAPIRefusalsAreProblemDetails(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	for _, app := range []string{"", withOIDC(op)} {
		e := newEnv(t, envOptions{appOptions: app})
		tokens := e.mgmtURL + "/v1/tokens"
		wantCredentialRefused(t, "no credential", call(t, "GET", tokens), http.StatusUnauthorized, "token_missing", "")
		bogus := "tg_0000000000000000000000000000000000000"
		wantCredentialRefused(t, "bogus secret", call(t, "GET", tokens, bearer(bogus)...), http.StatusUnauthorized, "token_malformed", bogus)
		if app == "" {
			// Without oidc an ID token is just a malformed credential.
			idt := op.SignIn(t, oidcop.CLIClientID, "alice")
			wantCredentialRefused(t, "ID token without oidc", call(t, "GET", tokens, bearer(idt)...), http.StatusUnauthorized, "token_malformed", idt)
		}
	}
}

func splitJWT(raw string) (header, payload, sig string) {
	parts := strings.SplitN(raw, ".", 3)
	if len(parts) != 3 {
		return raw, "", ""
	}
	return parts[0], parts[1], parts[2]
}

func idTokenClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	_, payload, _ := splitJWT(raw)
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// jwtSegment encodes v as a JWT segment; tests use it only to craft tokens
// the gateway must refuse.
func jwtSegment(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// A person's management calls stop, as a token's do, while their audit
// lines cannot be written.
func TestPersonCallsFailClosedWithoutAudit(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	e := &env{t: t, dir: t.TempDir(), upstream: startUpstream(t)}
	path := filepath.Join(e.dir, "audit.log")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	e.load(envOptions{appOptions: withOIDC(op)})
	t.Cleanup(e.checkNothingLeaked)
	alice := op.SignIn(t, oidcop.CLIClientID, "alice")
	// The first call's line is the first write to fail; from then on the
	// sink is known to be broken.
	call(t, "GET", e.mgmtURL+"/v1/tokens", bearer(alice)...)
	for i := range 3 {
		r := call(t, "GET", e.mgmtURL+"/v1/tokens", bearer(alice)...)
		wantCredentialRefused(t, fmt.Sprintf("call %d without audit", i), r, http.StatusServiceUnavailable, "audit_unavailable", alice)
	}
	// The leak check reads the audit file: put a real one in its place.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"level":"info","ts":1,"logger":"tokengate.audit","msg":"token.issued","schema":2,"actor":"t","token_id":"tok_x","reason":"","outcome":"success"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}
