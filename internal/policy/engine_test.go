package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
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
	// Liveness (expiry, revocation, rotation, uses) is the gateway's, in
	// Go; the policy decides permissions.
	cases := []struct {
		name    string
		mutate  func(*store.Token, *Request, *string)
		reasons []string
	}{
		{"write with read scope", func(_ *store.Token, r *Request, _ *string) { r.Method = "POST" }, []string{"scope_missing"}},
		{"other service", func(_ *store.Token, _ *Request, s *string) { *s = "search" }, []string{"scope_missing", "service_not_bound"}},
		{"ipv6 outside", func(_ *store.Token, r *Request, _ *string) { r.RemoteIP = "2001:db9::1" }, []string{"ip_not_allowed"}},
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

const allowAll = "package tokengate.gateway\nreasons := set()\nttl_seconds := 5\n"
const denyAll = "package tokengate.gateway\nreasons contains \"closed_for_maintenance\"\n"

func TestBrokenPolicyKeepsPreviousRevision(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "gateway.rego", allowAll)
	e, err := NewEngine(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	rev := e.Revision()
	writePolicy(t, dir, "gateway.rego", "package tokengate.gateway\nreasons := {\n")
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

// Whatever the policy answers in place of a set of reason strings is an
// error, never an allow: refused at load when the type checker sees it
// (TestOutputTypesAreCheckedAtLoad), else when Decide reads it.
func TestMalformedReasonsFailClosed(t *testing.T) {
	for _, src := range []string{
		"reasons := true",
		"reasons := {1}",
		`reasons := "none"`,
		"reasons := {x | some x in input.token.scopes; false}\nscope := 1",
		"reasons := set()\nttl_seconds := -1",
		"reasons := set()\nttl_seconds := \"5\"",
		"reasons := data.bad.reasons",
		"reasons := {x | some x in data.bad.numbers}",
		"reasons := set()\nscope := data.bad.numbers",
		"reasons := set()\nttl_seconds := data.bad.reasons",
	} {
		e, err := NewEngine(fstest.MapFS{
			"gateway.rego":  {Data: []byte("package tokengate.gateway\n" + src + "\n")},
			"bad/data.json": {Data: []byte(`{"reasons": "none", "numbers": [1, 2]}`)},
		})
		if err != nil {
			if !strings.Contains(err.Error(), "gateway.rego:") {
				t.Errorf("%q: refused without file:line: %v", src, err)
			}
			continue
		}
		if d, err := e.Decide(context.Background(), GatewayQuery, ast.NewObject()); err == nil {
			t.Errorf("%q: got %+v, want an error", src, d)
		}
	}
}

// A gateway package without a reasons rule, or whose reasons is undefined,
// is refused or fails closed: it never reads as "no reasons".
func TestMissingReasonsFailClosed(t *testing.T) {
	if _, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte("package tokengate.gateway\ndecision := {\"allow\": true}\n")}}); err == nil {
		t.Fatal("a gateway package without reasons was accepted")
	}
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte("package tokengate.gateway\nreasons := set() if input.now > 0\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := e.Decide(context.Background(), GatewayQuery, ast.NewObject()); !errors.Is(err, ErrNoDecision) {
		t.Fatalf("undefined reasons: got %+v, %v; want ErrNoDecision", d, err)
	}
}

// Allow is derived from the reasons: rules named allow or decision, an
// else chain or a default cannot allow while a reason holds, and a reason
// rule added in a file of its own takes effect.
func TestAllowIsDerivedFromReasons(t *testing.T) {
	fsys := fstest.MapFS{
		"gateway.rego": {Data: []byte(`package tokengate.gateway

default allow := true

allow := true

decision := {"allow": true, "reasons": []}

reasons contains "scope_missing" if not "billing:read" in input.token.scopes
`)},
		"extra/private.rego": {Data: []byte(`package tokengate.gateway

reasons contains "path_forbidden" if startswith(input.request.path, "/billing/private/")
`)},
	}
	e, err := NewEngine(fsys)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := sampleToken(now)
	if d := decide(t, e, tok, Request{Method: "GET", Path: "/billing/x"}, "billing", now); !d.Allow || d.Reasons != nil {
		t.Fatalf("no reason holds, got %+v", d)
	}
	d := decide(t, e, tok, Request{Method: "GET", Path: "/billing/private/k"}, "billing", now)
	if d.Allow || !slices.Equal(d.Reasons, []string{"path_forbidden"}) {
		t.Fatalf("the added rule had no effect: %+v", d)
	}
}

// The admin decision object's allow counts only when no reason is given.
func TestAdminAllowNeedsNoReasons(t *testing.T) {
	e, err := NewEngine(fstest.MapFS{
		"gateway.rego": {Data: []byte(allowAll)},
		"admin.rego": {Data: []byte(`package tokengate.admin

decision := {"allow": true, "reasons": ["self_approval"], "auto_approve": true} if input.action == "approve"

decision := {"allow": false, "reasons": []} if input.action == "read"

decision := {"allow": true, "reasons": [], "auto_approve": true} if input.action == "request"
`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for action, want := range map[string]Decision{
		"approve": {Reasons: []string{"self_approval"}},
		"read":    {Reasons: []string{"policy_denied"}},
		"request": {Allow: true, AutoApprove: true},
	} {
		input := ast.NewObject([2]*ast.Term{ast.StringTerm("action"), ast.StringTerm(action)})
		d, err := e.Decide(context.Background(), AdminQuery, input)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow != want.Allow || d.AutoApprove != want.AutoApprove || !slices.Equal(d.Reasons, want.Reasons) {
			t.Errorf("%s: got %+v, want %+v", action, d, want)
		}
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
