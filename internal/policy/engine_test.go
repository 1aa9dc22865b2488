package policy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/internal/store"
	"github.com/tokengate/caddy-tokengate/policies"
)

func sampleToken(now time.Time) *store.Token {
	return &store.Token{
		ID: "tok_x", Owner: "alice", Purpose: "test",
		Scopes: []string{"billing:read"}, Services: []string{"billing"}, CIDRs: []string{"10.0.0.0/8", "2001:db8::/32"},
		NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour),
	}
}

func decide(t *testing.T, e *Engine, tok *store.Token, req Request, service string, now time.Time) Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), GatewayQuery, GatewayInput(TokenTerm(tok), req, service, now))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEmbeddedGatewayPolicy(t *testing.T) {
	e, err := NewEngine(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := sampleToken(now)
	get := Request{Method: "GET", Host: "h", Path: "/billing/x", RemoteIP: "10.1.1.1"}
	if d := decide(t, e, tok, get, "billing", now); !d.Allow || d.Revision != e.Revision() {
		t.Fatalf("valid read denied: %+v", d)
	}
	cases := []struct {
		name    string
		mutate  func(*store.Token, *Request, *string)
		reasons []string
	}{
		{"write with read scope", func(_ *store.Token, r *Request, _ *string) { r.Method = "POST" }, []string{"scope_missing"}},
		{"other service", func(_ *store.Token, _ *Request, s *string) { *s = "search" }, []string{"scope_missing", "service_not_bound"}},
		{"ipv6 outside", func(_ *store.Token, r *Request, _ *string) { r.RemoteIP = "2001:db9::1" }, []string{"ip_not_allowed"}},
		{"expired", func(tk *store.Token, _ *Request, _ *string) { tk.ExpiresAt = now }, []string{"token_expired"}},
		{"rotated", func(tk *store.Token, _ *Request, _ *string) { tk.GraceUntil = now.Add(-time.Second) }, []string{"token_rotated"}},
		{"revoked", func(tk *store.Token, _ *Request, _ *string) { tk.RevokedAt = now }, []string{"token_revoked"}},
		{"used up", func(tk *store.Token, _ *Request, _ *string) { tk.MaxUses, tk.Uses = 1, 1 }, []string{"uses_exhausted"}},
	}
	for _, c := range cases {
		tk, req, svc := sampleToken(now), get, "billing"
		c.mutate(tk, &req, &svc)
		d := decide(t, e, tk, req, svc, now)
		if d.Allow || !slices.Equal(d.Reasons, c.reasons) {
			t.Errorf("%s: got %+v, want deny %v", c.name, d, c.reasons)
		}
	}
}

func writePolicy(t *testing.T, dir, name, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

const allowAll = "package tokengate.gateway\ndecision := {\"allow\": true, \"reasons\": [], \"ttl_seconds\": 5}\n"
const denyAll = "package tokengate.gateway\ndecision := {\"allow\": false, \"reasons\": [\"closed_for_maintenance\"]}\n"

func TestBrokenPolicyKeepsPreviousRevision(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "gateway.rego", allowAll)
	e, err := NewEngine(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	rev := e.Revision()
	writePolicy(t, dir, "gateway.rego", "package tokengate.gateway\ndecision := {\"allow\": true\n")
	if _, err := e.Reload(); err == nil {
		t.Fatal("broken policy compiled")
	}
	if e.Revision() != rev {
		t.Fatal("broken policy replaced the working one")
	}
	d := decide(t, e, sampleToken(time.Now()), Request{Method: "GET"}, "billing", time.Now())
	if !d.Allow || d.TTL != 5*time.Second {
		t.Fatalf("previous policy not serving: %+v", d)
	}
}

func TestPolicyWithoutGatewayPackageIsRefused(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "other.rego", "package something.else\nx := 1\n")
	if _, err := NewEngine(os.DirFS(dir)); err == nil {
		t.Fatal("a policy folder without tokengate.gateway was accepted")
	}
}

func TestNonObjectDecisionFailsClosed(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "gateway.rego", "package tokengate.gateway\ndecision := true\n")
	e, err := NewEngine(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Decide(context.Background(), GatewayQuery, ast.NewObject()); err == nil {
		t.Fatal("a malformed decision was accepted")
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "gateway.rego", allowAll)
	e, err := NewEngine(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := make(chan error, 10)
	if err := e.Watch(ctx, dir, func(_ string, err error) { reports <- err }); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, "gateway.rego", "package tokengate.gateway\nbroken := \n")
	if err := <-reports; err == nil {
		t.Fatal("broken edit reported as loaded")
	}
	writePolicy(t, dir, "gateway.rego", denyAll)
	if err := <-reports; err != nil {
		t.Fatalf("valid edit refused: %v", err)
	}
	d := decide(t, e, sampleToken(time.Now()), Request{Method: "GET"}, "billing", time.Now())
	if d.Allow || !slices.Equal(d.Reasons, []string{"closed_for_maintenance"}) {
		t.Fatalf("reloaded policy not in force: %+v", d)
	}
}
