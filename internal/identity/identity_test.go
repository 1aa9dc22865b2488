package identity_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// clock is a fake clock tests move instead of waiting.
type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) now() time.Time       { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.d) }
func (c *clock) move(d time.Duration) { c.mu.Lock(); c.d += d; c.mu.Unlock() }

func person(t *testing.T, op *oidcop.OP, c identity.PersonConfig, opts ...identity.Option) *identity.Verifier {
	t.Helper()
	if c.Issuer == "" {
		c.Issuer = op.Issuer()
	}
	if c.Audience == "" {
		c.Audience = oidcop.CLIClientID
	}
	v, err := identity.NewPerson(context.Background(), c, opts...)
	if err != nil {
		t.Fatalf("NewPerson: %v", err)
	}
	return v
}

func wantRefusal(t *testing.T, err error, reason string) {
	t.Helper()
	var r *identity.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("want refusal %s, got %v", reason, err)
	}
	if r.Code != reason {
		t.Fatalf("want reason %s, got %s (%s)", reason, r.Code, r.Detail)
	}
}

// parts splits a JWT and decodes its payload.
func payload(t *testing.T, raw string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func seg(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestPersonSignsIn(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{})
	id, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "alice"))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if id.Principal != "alice" || id.Kind != identity.PersonKind || id.Issuer != op.Issuer() ||
		!slices.Equal(id.Groups, []string{"developers"}) || id.Claims["email"] != "alice@example.com" ||
		time.Until(id.Expiry) < 50*time.Minute {
		t.Fatalf("identity %+v", id)
	}
}

func TestPrincipalClaimEmailNeedsEmailVerified(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{Users: []oidcop.User{
		{Username: "alice", Email: "alice@example.com", EmailVerified: true},
		{Username: "mallory", Email: "ceo@example.com", EmailVerified: false},
	}})
	v := person(t, op, identity.PersonConfig{PrincipalClaim: "email"})
	id, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "alice"))
	if err != nil || id.Principal != "alice@example.com" {
		t.Fatalf("verified email: %+v %v", id, err)
	}
	_, err = v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "mallory"))
	wantRefusal(t, err, identity.ReasonEmailNotVerified)
}

func TestPrincipalClaimMissing(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{PrincipalClaim: "employee_id"})
	_, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "alice"))
	wantRefusal(t, err, identity.ReasonPrincipalMissing)
}

func TestGroupsClaimStringOrArray(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{Users: []oidcop.User{
		{Username: "alice", Claims: map[string]any{"roles": "admins"}},
		{Username: "bob", Claims: map[string]any{"roles": []string{"approvers", "developers"}}},
	}})
	v := person(t, op, identity.PersonConfig{GroupsClaim: "roles"})
	a, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "alice"))
	if err != nil || !slices.Equal(a.Groups, []string{"admins"}) {
		t.Fatalf("string groups: %v %v", a.Groups, err)
	}
	b, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "bob"))
	if err != nil || !slices.Equal(b.Groups, []string{"approvers", "developers"}) {
		t.Fatalf("array groups: %v %v", b.Groups, err)
	}
}

func TestExpiredTokenIsRefused(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	c := &clock{}
	v := person(t, op, identity.PersonConfig{}, identity.WithClock(c.now))
	raw := op.SignIn(t, oidcop.CLIClientID, "alice")
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	c.move(61 * time.Minute)
	_, err := v.Verify(context.Background(), raw)
	wantRefusal(t, err, identity.ReasonExpired)
}

func TestTokenIssuedInTheFutureIsNotYetValid(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	c := &clock{}
	c.move(-10 * time.Minute)
	v := person(t, op, identity.PersonConfig{}, identity.WithClock(c.now))
	_, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "alice"))
	wantRefusal(t, err, identity.ReasonNotYetValid)
}

func TestTooOldTokenIsRefused(t *testing.T) {
	// The OP backdates iat by 13h; exp is still an hour ahead.
	op := oidcop.Start(t, oidcop.Options{Clients: []oidcop.Client{{ID: "old", ClockSkew: 13 * time.Hour}}})
	raw := op.SignIn(t, "old", "alice")
	_, err := person(t, op, identity.PersonConfig{Audience: "old"}).Verify(context.Background(), raw)
	wantRefusal(t, err, identity.ReasonTooOld)
	if _, err := person(t, op, identity.PersonConfig{Audience: "old", MaxAge: identity.Duration(24 * time.Hour)}).Verify(context.Background(), raw); err != nil {
		t.Fatalf("max_age 24h: %v", err)
	}
}

func TestWrongIssuerIsRefused(t *testing.T) {
	ours := oidcop.Start(t, oidcop.Options{})
	theirs := oidcop.Start(t, oidcop.Options{})
	_, err := person(t, ours, identity.PersonConfig{}).Verify(context.Background(), theirs.SignIn(t, oidcop.CLIClientID, "alice"))
	wantRefusal(t, err, identity.ReasonIssuer)
}

func TestWrongAudienceIsRefused(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{Clients: []oidcop.Client{{ID: "another-app"}}})
	_, err := person(t, op, identity.PersonConfig{}).Verify(context.Background(), op.SignIn(t, "another-app", "alice"))
	wantRefusal(t, err, identity.ReasonAudience)
}

func TestUnsignedTokenIsRefused(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{})
	claims := payload(t, op.SignIn(t, oidcop.CLIClientID, "alice"))
	for _, alg := range []string{"none", "None", "NONE"} {
		raw := seg(map[string]string{"alg": alg, "typ": "JWT"}) + "." + seg(claims) + "."
		_, err := v.Verify(context.Background(), raw)
		wantRefusal(t, err, identity.ReasonAlgorithm)
	}
}

func TestHMACWithThePublicKeyIsRefused(t *testing.T) {
	// The classic key confusion: HS256 keyed with something public.
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{})
	claims := payload(t, op.SignIn(t, oidcop.CLIClientID, "alice"))
	signing := seg(map[string]string{"alg": "HS256", "kid": op.KeyID()}) + "." + seg(claims)
	mac := hmac.New(sha256.New, []byte(op.KeyID()))
	mac.Write([]byte(signing))
	_, err := v.Verify(context.Background(), signing+"."+base64.RawURLEncoding.EncodeToString(mac.Sum(nil)))
	wantRefusal(t, err, identity.ReasonAlgorithm)
}

func TestForgedSignatureIsRefused(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{})
	raw := op.SignIn(t, oidcop.CLIClientID, "alice")
	parts := strings.Split(raw, ".")
	claims := payload(t, raw)
	claims["sub"] = "bob"
	_, err := v.Verify(context.Background(), parts[0]+"."+seg(claims)+"."+parts[2])
	wantRefusal(t, err, identity.ReasonSignature)
}

func TestMalformedTokensAreRefused(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{})
	for _, raw := range []string{"", "tg_not_a_jwt", "a.b", "!!.b.c", seg("x") + ".b.c"} {
		_, err := v.Verify(context.Background(), raw)
		wantRefusal(t, err, identity.ReasonMalformed)
	}
}

func TestKeyRotationIsPickedUp(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	c := &clock{}
	v := person(t, op, identity.PersonConfig{}, identity.WithClock(c.now))
	old := op.SignIn(t, oidcop.CLIClientID, "alice")
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	op.RotateKey(t)
	c.move(time.Minute)
	id, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "bob"))
	if err != nil || id.Principal != "bob" {
		t.Fatalf("token with the new key: %v", err)
	}
	_, err = v.Verify(context.Background(), old)
	wantRefusal(t, err, identity.ReasonSignature)
}

func TestUnreachableIssuerFailsClosedAndRecovers(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	raw := op.SignIn(t, oidcop.CLIClientID, "alice")
	op.SetDown(true)
	c := &clock{}
	v := person(t, op, identity.PersonConfig{}, identity.WithClock(c.now))
	if err := v.Discover(context.Background()); err == nil {
		t.Fatal("discovery of a provider that is down succeeded")
	}
	_, err := v.Verify(context.Background(), raw)
	wantRefusal(t, err, identity.ReasonIssuerUnavailable)

	op.SetDown(false)
	c.move(10 * time.Second)
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("after the provider is back: %v", err)
	}

	// Keys are needed again after a rotation; the provider is down.
	op.RotateKey(t)
	fresh := op.SignIn(t, oidcop.CLIClientID, "alice")
	op.SetDown(true)
	c.move(10 * time.Second)
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("a token of a cached key while the provider is down: %v", err)
	}
	_, err = v.Verify(context.Background(), fresh)
	wantRefusal(t, err, identity.ReasonIssuerUnavailable)
}

func TestIssuerNobodyListensOn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + l.Addr().String()
	l.Close()
	v, err := identity.NewPerson(context.Background(), identity.PersonConfig{Issuer: issuer, Audience: "tokengate"})
	if err != nil {
		t.Fatalf("NewPerson must not need the issuer: %v", err)
	}
	raw := seg(map[string]string{"alg": "RS256", "kid": "k"}) + "." + seg(map[string]any{"iss": issuer}) + "." + seg("sig")
	_, err = v.Verify(context.Background(), raw)
	wantRefusal(t, err, identity.ReasonIssuerUnavailable)
}

func TestConfigErrors(t *testing.T) {
	for name, c := range map[string]identity.PersonConfig{
		"no issuer":   {Audience: "a"},
		"no audience": {Issuer: "https://login.example.com"},
		"not a URL":   {Issuer: "login.example.com", Audience: "a"},
		"plain http":  {Issuer: "http://login.example.com", Audience: "a"},
		"query":       {Issuer: "https://login.example.com/?x=1", Audience: "a"},
		"alg none":    {Issuer: "https://login.example.com", Audience: "a", Algorithms: []string{"none"}},
		"alg HS256":   {Issuer: "https://login.example.com", Audience: "a", Algorithms: []string{"HS256"}},
		"max_age < 0": {Issuer: "https://login.example.com", Audience: "a", MaxAge: identity.Duration(-time.Hour)},
	} {
		if _, err := identity.NewPerson(context.Background(), c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := identity.NewWorkloads(context.Background(), []identity.WorkloadConfig{
		{Name: "github", Issuer: "https://a.example.com", Audience: "x"},
		{Name: "github", Issuer: "https://b.example.com", Audience: "x"},
	}); err == nil {
		t.Error("two workloads with one name accepted")
	}
}

func TestAlgorithmAllowList(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	v := person(t, op, identity.PersonConfig{Algorithms: []string{"ES256"}})
	_, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "alice"))
	wantRefusal(t, err, identity.ReasonAlgorithm)
}

func TestWorkloads(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	other := oidcop.Start(t, oidcop.Options{})
	w, err := identity.NewWorkloads(context.Background(), []identity.WorkloadConfig{
		{Name: "github", Issuer: op.Issuer(), Audience: "https://gw.example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"sub": "repo:acme/billing:environment:production", "repository": "acme/billing",
		"ref": "refs/heads/main", "environment": "production", "workflow": "deploy"}
	id, err := w.Verify(context.Background(), op.WorkloadToken(t, "https://gw.example.com", claims))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if id.Kind != identity.WorkloadKind || id.Issuer != "github" || id.Principal != claims["sub"] ||
		id.Claims["repository"] != "acme/billing" || id.Claims["environment"] != "production" {
		t.Fatalf("identity %+v", id)
	}
	_, err = w.Verify(context.Background(), op.WorkloadToken(t, "https://elsewhere.example.com", claims))
	wantRefusal(t, err, identity.ReasonAudience)
	_, err = w.Verify(context.Background(), other.WorkloadToken(t, "https://gw.example.com", claims))
	wantRefusal(t, err, identity.ReasonIssuer)
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{`"12h"`: 12 * time.Hour, `"1d"`: 24 * time.Hour, `"2d6h"`: 54 * time.Hour, `3600000000000`: time.Hour} {
		var d identity.Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v %v", in, time.Duration(d), err)
		}
	}
	var d identity.Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("soon accepted")
	}
}

func TestWorkloadTokenBeforeItsNbfIsNotYetValid(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	c := &clock{}
	c.move(-10 * time.Minute)
	w, err := identity.NewWorkloads(context.Background(), []identity.WorkloadConfig{
		{Name: "github", Issuer: op.Issuer(), Audience: "gw"},
	}, identity.WithClock(c.now))
	if err != nil {
		t.Fatal(err)
	}
	raw := op.WorkloadToken(t, "gw", map[string]any{"sub": "repo:acme/app:ref:refs/heads/main"})
	if _, ok := payload(t, raw)["nbf"]; !ok {
		t.Fatal("the workload token has no nbf to check")
	}
	_, err = w.Verify(context.Background(), raw)
	wantRefusal(t, err, identity.ReasonNotYetValid)
}

// Forged tokens must not turn into requests to the identity provider: a
// made-up kid fetches the key set at most once per few seconds, and a
// known kid with a bad signature never does.
func TestForgedTokensDoNotFloodTheJWKS(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	c := &clock{}
	v := person(t, op, identity.PersonConfig{}, identity.WithClock(c.now))
	raw := op.SignIn(t, oidcop.CLIClientID, "alice")
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	before := op.Hits("/keys")
	parts := strings.Split(raw, ".")
	claims := payload(t, raw)
	for i := range 50 {
		claims["sub"] = "mallory"
		_, err := v.Verify(context.Background(), parts[0]+"."+seg(claims)+"."+parts[2])
		wantRefusal(t, err, identity.ReasonSignature)
		made := seg(map[string]string{"alg": "RS256", "kid": "made-up-" + string(rune('a'+i%26))}) + "." + seg(claims) + "." + parts[2]
		_, err = v.Verify(context.Background(), made)
		wantRefusal(t, err, identity.ReasonSignature)
	}
	if n := op.Hits("/keys") - before; n > 1 {
		t.Fatalf("100 forged tokens cost the provider %d JWKS fetches", n)
	}
	// Past the refetch spacing each time, a known kid with a bad
	// signature still fetches nothing: the key under a kid never changes.
	before = op.Hits("/keys")
	for range 3 {
		c.move(time.Minute)
		_, err := v.Verify(context.Background(), parts[0]+"."+seg(claims)+"."+parts[2])
		wantRefusal(t, err, identity.ReasonSignature)
	}
	if n := op.Hits("/keys") - before; n != 0 {
		t.Fatalf("forged tokens under a known kid cost the provider %d JWKS fetches", n)
	}
	c.move(time.Minute)
	op.RotateKey(t)
	if _, err := v.Verify(context.Background(), op.SignIn(t, oidcop.CLIClientID, "bob")); err != nil {
		t.Fatalf("a rotated-in key is still found: %v", err)
	}
}
