package identity_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
	"github.com/tokengate/caddy-tokengate/internal/token"
)

// idToken is an ID token the OP signs for sub with aud our client id,
// issued now and valid an hour; extra claims are added or replace these.
func idToken(t *testing.T, op *oidcop.OP, sub string, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": op.Issuer(), "sub": sub, "aud": oidcop.CLIClientID,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	return op.Sign(t, claims)
}

// OpenID Connect Core 3.1.3.7: azp, when present, is our client id; with
// several audiences it must be there.
func TestAuthorizedParty(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{})
	for _, c := range []struct {
		name   string
		claims map[string]any
		reason string
	}{
		{"azp of another client", map[string]any{"aud": []string{"evil", oidcop.CLIClientID}, "azp": "evil"}, identity.ReasonAuthorizedParty},
		{"azp of another client, one audience", map[string]any{"azp": "evil"}, identity.ReasonAuthorizedParty},
		{"several audiences, no azp", map[string]any{"aud": []string{"evil", oidcop.CLIClientID}}, identity.ReasonAuthorizedParty},
		{"azp not a string", map[string]any{"azp": []string{oidcop.CLIClientID}}, identity.ReasonAuthorizedParty},
		{"several audiences, azp ours", map[string]any{"aud": []string{"evil", oidcop.CLIClientID}, "azp": oidcop.CLIClientID}, ""},
		{"one audience in an array, no azp", map[string]any{"aud": []string{oidcop.CLIClientID}}, ""},
		{"azp ours", map[string]any{"azp": oidcop.CLIClientID}, ""},
	} {
		_, err := v.Verify(context.Background(), idToken(t, op, "alice", c.claims))
		if c.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		wantRefusal(t, err, c.reason)
	}
	// The OP's own sign-in passes (its tokens carry azp = the client).
	if _, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "alice")); err != nil {
		t.Fatal(err)
	}
}

// People's principals and workloads' subjects follow the rules of free
// text and may not take a name tokengate writes itself.
func TestPrincipalsAreChecked(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	people := person(t, op, identity.PersonConfig{})
	emails := person(t, op, identity.PersonConfig{PrincipalClaim: "email"})
	w, err := identity.NewWorkloads(context.Background(), []identity.WorkloadConfig{{Name: "ci", Issuer: op.Issuer(), Audience: "https://gw.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	secret := token.NewSecret()
	bad := []string{
		"\x1b[2Jalice", "ali\x00ce", "alice\u202e", "ali\u200bce", "alice ", " alice", "local-operator ",
		"local-operator", "Local-Operator2", secret, "x" + secret[:20] + "\u200b" + secret[20:],
		"policy:just-in-time", "POLICY:exchange",
	}
	for _, sub := range bad {
		_, err := people.Verify(context.Background(), idToken(t, op, sub, nil))
		wantRefusal(t, err, identity.ReasonPrincipalInvalid)
		_, err = emails.Verify(context.Background(), idToken(t, op, "alice", map[string]any{"email": sub, "email_verified": true}))
		wantRefusal(t, err, identity.ReasonPrincipalInvalid)
		_, err = w.Verify(context.Background(), op.WorkloadToken(t, "https://gw.example.com", map[string]any{"sub": sub}))
		wantRefusal(t, err, identity.ReasonPrincipalInvalid)
	}
	// workload: is a person's reserved prefix only: tokengate adds it to
	// every workload's subject itself.
	_, err = people.Verify(context.Background(), idToken(t, op, "workload:ci:repo:x", nil))
	wantRefusal(t, err, identity.ReasonPrincipalInvalid)
	if _, err := w.Verify(context.Background(), op.WorkloadToken(t, "https://gw.example.com", map[string]any{"sub": "workload:x"})); err != nil {
		t.Errorf("a workload subject starting with workload: %v", err)
	}
	for _, sub := range []string{"alice", "alice@example.com", "Zoë Müller", "policy-team", "operator"} {
		if _, err := people.Verify(context.Background(), idToken(t, op, sub, nil)); err != nil {
			t.Errorf("%q: %v", sub, err)
		}
	}
}

func TestAllowDomainsAndGroups(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{AllowDomains: []string{"Example.com"}, AllowGroups: []string{"contractors"}})
	for _, c := range []struct {
		name   string
		claims map[string]any
		ok     bool
	}{
		{"verified email in the domain", map[string]any{"email": "alice@example.com", "email_verified": true}, true},
		{"upper-case domain", map[string]any{"email": "alice@EXAMPLE.COM", "email_verified": true}, true},
		{"verified as the string true", map[string]any{"email": "alice@example.com", "email_verified": "true"}, true},
		{"listed group", map[string]any{"email": "eve@elsewhere.org", "email_verified": true, "groups": []string{"x", "contractors"}}, true},
		{"unverified email in the domain", map[string]any{"email": "alice@example.com", "email_verified": false}, false},
		{"email without email_verified", map[string]any{"email": "alice@example.com"}, false},
		{"subdomain", map[string]any{"email": "alice@corp.example.com", "email_verified": true}, false},
		{"look-alike domain", map[string]any{"email": "alice@example.com.evil.org", "email_verified": true}, false},
		{"quoted @ in the local part", map[string]any{"email": `"a@example.com"@evil.org`, "email_verified": true}, false},
		{"other domain, other group", map[string]any{"email": "eve@evil.org", "email_verified": true, "groups": "Contractors"}, false},
		{"nothing", nil, false},
	} {
		_, err := v.Verify(context.Background(), idToken(t, op, "someone", c.claims))
		if c.ok {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var r *identity.Refusal
		if !errors.As(err, &r) || r.Code != identity.ReasonSigninNotAllowed || !r.Forbidden() {
			t.Errorf("%s: %v, want %s", c.name, err, identity.ReasonSigninNotAllowed)
		}
	}
	for _, bad := range [][]string{{""}, {"*.example.com"}, {"@example.com"}, {".example.com"}} {
		if _, err := identity.NewPerson(context.Background(), identity.PersonConfig{Issuer: op.Issuer(), Audience: "x", AllowDomains: bad}); err == nil {
			t.Errorf("allow_domains %q accepted", bad)
		}
	}
}
