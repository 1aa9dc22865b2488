package oidcop_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

func claims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func verifier(t *testing.T, op *oidcop.OP, aud string) *oidc.IDTokenVerifier {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), op.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return p.Verifier(&oidc.Config{ClientID: aud})
}

func TestSignInGivesASignedIDTokenWithEmailAndGroups(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	raw := op.SignIn(t, oidcop.CLIClientID, "alice")
	tok, err := verifier(t, op, oidcop.CLIClientID).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var c struct {
		Email         string   `json:"email"`
		EmailVerified bool     `json:"email_verified"`
		Groups        []string `json:"groups"`
	}
	if err := tok.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if tok.Subject != "alice" || c.Email != "alice@example.com" || !c.EmailVerified || len(c.Groups) != 1 || c.Groups[0] != "developers" {
		t.Fatalf("claims: sub %q %+v", tok.Subject, c)
	}
}

func TestDeviceGrantGivesAnIDToken(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{Users: []oidcop.User{{Username: "carol", Password: "another-secret", Email: "carol@example.com", EmailVerified: true}}})
	resp, err := http.PostForm(op.Issuer()+"/device_authorization", url.Values{"client_id": {oidcop.CLIClientID}, "scope": {"openid email"}})
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		DeviceCode string `json:"device_code"`
		UserCode   string `json:"user_code"`
	}
	json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()
	if dev.UserCode == "" {
		t.Fatalf("device authorization: %d", resp.StatusCode)
	}
	op.ApproveDevice(t, dev.UserCode, "carol")
	resp, err = http.PostForm(op.Issuer()+"/oauth/token", url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dev.DeviceCode}, "client_id": {oidcop.CLIClientID},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		IDToken string `json:"id_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.IDToken == "" {
		t.Fatalf("device token: %d", resp.StatusCode)
	}
	idt, err := verifier(t, op, oidcop.CLIClientID).Verify(context.Background(), tok.IDToken)
	if err != nil || idt.Subject != "carol" {
		t.Fatalf("device id token: %v", err)
	}
}

func TestExpiredAndOldTokensAreGenuinelySigned(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{Clients: []oidcop.Client{
		{ID: "expired", IDTokenLifetime: -time.Hour},
		{ID: "old", ClockSkew: 13 * time.Hour},
	}})
	v := verifier(t, op, "expired")
	var expired *oidc.TokenExpiredError
	if _, err := v.Verify(context.Background(), op.SignIn(t, "expired", "alice")); !errors.As(err, &expired) {
		t.Fatalf("want expired, got %v", err)
	}
	old, err := verifier(t, op, "old").Verify(context.Background(), op.SignIn(t, "old", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(old.IssuedAt); age < 12*time.Hour {
		t.Fatalf("iat only %v ago", age)
	}
}

func TestRotateKeyDropsTheOldKeyFromTheJWKS(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	old := op.SignIn(t, oidcop.CLIClientID, "alice")
	v := verifier(t, op, oidcop.CLIClientID)
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	oldKid := op.KeyID()
	op.RotateKey(t)
	if op.KeyID() == oldKid {
		t.Fatal("kid did not change")
	}
	fresh := op.SignIn(t, oidcop.CLIClientID, "bob")
	if _, err := v.Verify(context.Background(), fresh); err != nil {
		t.Fatalf("new key not picked up: %v", err)
	}
	// go-oidc's key set wakes the verifications waiting on a fetch before
	// it replaces its cached keys (jwks.go, keysFromRemote), so for a
	// moment after the fetch the old key can still be in its cache; the
	// first verification after that refetches and refuses the old token.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := v.Verify(context.Background(), old); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a token signed with the dropped key still verifies 2 s after the new key was fetched")
		}
	}
	resp, err := http.Get(op.Issuer() + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct{ Keys []struct{ Kid string } }
	json.NewDecoder(resp.Body).Decode(&jwks)
	if len(jwks.Keys) != 1 || jwks.Keys[0].Kid != op.KeyID() {
		t.Fatalf("jwks %+v", jwks)
	}
}

func TestWorkloadTokenCarriesCustomClaims(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	raw := op.WorkloadToken(t, "https://gw.example.com", map[string]any{
		"sub": "repo:acme/billing:environment:production", "repository": "acme/billing",
		"ref": "refs/heads/main", "environment": "production", "workflow": "deploy",
	})
	tok, err := verifier(t, op, "https://gw.example.com").Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	c := claims(t, raw)
	if tok.Subject != "repo:acme/billing:environment:production" || c["repository"] != "acme/billing" || c["environment"] != "production" || c["workflow"] != "deploy" {
		t.Fatalf("claims %v", c)
	}
}
