package caddymodule

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/policies"
)

// copyPolicies writes the shipped policies (tests included) into a new
// folder, plus extra files, and returns the folder.
func copyPolicies(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, src []byte) error {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, src, 0o644)
	}
	// The shipped files include data in subfolders
	// (tokengate/directory/data.json).
	err := fs.WalkDir(policies.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			return err
		}
		return write(name, src)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range extra {
		if err := write(name, []byte(src)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A deny rule a user adds takes effect for every call, cached or not, in
// `check` and in `policy-test`: the engine derives allow from the reasons,
// so no earlier rule body can allow first.
func TestAddedDenyRuleTakesEffect(t *testing.T) {
	t.Parallel()
	dir := copyPolicies(t, map[string]string{
		"internal.rego": `package tokengate.gateway

reasons contains "path_forbidden" if startswith(input.request.path, "/billing/internal/")
`,
		"internal_test.rego": `package tokengate.internal_test

import data.tokengate.gateway

test_internal_forbidden if {
	"path_forbidden" in gateway.reasons with input as {
		"token": {"id": "tok_x", "owner": "a", "purpose": "p", "scopes": ["billing:read"], "services": ["billing"],
			"cidrs": [], "not_before": 0, "expires_at": 2, "max_uses": 0, "uses": 0},
		"request": {"method": "GET", "host": "h", "path": "/billing/internal/k", "raw_path": "/billing/internal/k",
			"remote_ip": "10.0.0.1", "headers": {}},
		"route": {"service": "billing"},
		"now": 1,
	}
}
`,
	})
	results, err := policy.RunTests(t.Context(), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("policy-test: %s: %s", r.Name, r.Detail)
		}
	}
	for _, cache := range []int{0, 1000} {
		e := newEnv(t, envOptions{decisionCache: cache, policyDir: dir})
		secret, id := e.issue(billingReader(nil))
		for range 2 { // with the cache on, the second call is a hit
			if r := call(t, "GET", e.gateURL+"/billing/internal/k", bearer(secret)...); r.status != 403 || r.reason != "path_forbidden" {
				t.Fatalf("cache %d: %d %s", cache, r.status, r.body)
			}
			if r := call(t, "GET", e.gateURL+"/billing/public/k", bearer(secret)...); r.status != 200 {
				t.Fatalf("cache %d: public path: %d %s", cache, r.status, r.body)
			}
		}
		if n := len(e.upstream.received("/billing/internal/k")); n != 0 {
			t.Fatalf("cache %d: %d forbidden calls reached the upstream", cache, n)
		}
		status, body := e.admin("POST", "/tokengate/check", map[string]string{"token_id": id, "service": "billing", "method": "GET", "path": "/billing/internal/k"})
		if res := decode[CheckResult](t, body); status != 200 || res.Allow || len(res.Reasons) != 1 || res.Reasons[0] != "path_forbidden" {
			t.Fatalf("cache %d: check: %d %s", cache, status, body)
		}
		// check reads the path as the gateway does: cleaned, and refused
		// where the readings could differ.
		status, body = e.admin("POST", "/tokengate/check", map[string]string{"token_id": id, "service": "billing", "method": "GET", "path": "/billing/a/../internal/k"})
		if res := decode[CheckResult](t, body); status != 200 || res.Allow || len(res.Reasons) != 1 || res.Reasons[0] != "path_forbidden" {
			t.Fatalf("cache %d: check of a dot-dot path: %d %s", cache, status, body)
		}
		if status, body = e.admin("POST", "/tokengate/check", map[string]string{"token_id": id, "service": "billing", "path": "/billing/%2e%2e/internal/k"}); status != 400 || !strings.Contains(string(body), "path_invalid") {
			t.Fatalf("cache %d: check of an encoded dot segment: %d %s", cache, status, body)
		}
	}
}

// Liveness is the gateway's, not the policy's: with a gateway policy that
// refuses nothing at all, revoked and used-up tokens are still refused.
func TestPermissivePolicyCannotResurrectDeadTokens(t *testing.T) {
	t.Parallel()
	dir := copyPolicies(t, map[string]string{"gateway.rego": `package tokengate.gateway

reasons contains "never" if input.now < 0
`, "gateway_test.rego": `package tokengate.gateway_test
`})
	e := newEnv(t, envOptions{decisionCache: 1000, policyDir: dir})
	revoked, revokedID := e.issue(billingReader(nil))
	if r := call(t, "GET", e.gateURL+"/billing/a", bearer(revoked)...); r.status != 200 {
		t.Fatalf("before revoke: %d %s", r.status, r.body)
	}
	if status, body := e.admin("POST", "/tokengate/tokens/"+revokedID+"/revoke", map[string]string{"reason": "leaked in chat"}); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if r := call(t, "GET", e.gateURL+"/billing/a", bearer(revoked)...); r.status != 401 || r.reason != "token_revoked" {
		t.Fatalf("revoked token under a permissive policy: %d %s", r.status, r.body)
	}
	once, _ := e.issue(billingReader(map[string]any{"max_uses": 1}))
	if r := call(t, "GET", e.gateURL+"/billing/b", bearer(once)...); r.status != 200 {
		t.Fatalf("first use: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", e.gateURL+"/billing/b", bearer(once)...); r.status != 401 || r.reason != "uses_exhausted" {
		t.Fatalf("used-up token under a permissive policy: %d %s", r.status, r.body)
	}
}
