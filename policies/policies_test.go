package policies_test

import (
	"context"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/policies"
)

// TestRegoPolicies runs every test_ rule in this folder through OPA's own
// test runner, so `go test ./...` and `opa test` on policies/ check the same
// thing.
func TestRegoPolicies(t *testing.T) {
	results, err := policy.RunTests(context.Background(), policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no Rego tests found")
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s: %s", r.Name, r.Detail)
		}
	}
	t.Logf("%d Rego tests ran", len(results))
}

// TestEveryReasonCodeIsTested keeps the Rego tests honest: each reason code
// a policy can emit must be named in its _test.rego file.
func TestEveryReasonCodeIsTested(t *testing.T) {
	files, err := fs.Glob(policies.FS, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, file := range files {
		if !policy.IsPolicyFile(file) {
			continue
		}
		name := strings.TrimSuffix(file, ".rego")
		src, err := fs.ReadFile(policies.FS, file)
		if err != nil {
			t.Fatal(err)
		}
		tests, err := fs.ReadFile(policies.FS, name+"_test.rego")
		if err != nil {
			t.Fatalf("%s has no tests: %v", file, err)
		}
		codes := reasonCode.FindAllStringSubmatch(string(src), -1)
		if len(codes) == 0 {
			t.Fatalf("%s emits no reason codes", file)
		}
		for _, c := range codes {
			if !strings.Contains(string(tests), `"`+c[1]+`"`) {
				t.Errorf("%s emits %q but %s_test.rego never checks it", file, c[1], name)
			}
		}
		checked++
	}
	if checked < 4 {
		t.Fatalf("checked %d policy files, want gateway, admin, admin_roles and admin_rules at least", checked)
	}
}

var reasonCode = regexp.MustCompile(`(?:reasons|denials) contains "([a-z_]+)"`)
