package policies

import (
	"context"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestRegoPolicies runs every test_ rule in this folder through OPA's own
// test runner, so `go test ./...` and `opa test policies/` check the same
// thing.
func TestRegoPolicies(t *testing.T) {
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(FS, path)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(path, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules[path] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := tester.NewRunner().SetModules(modules).RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for r := range ch {
		ran++
		name := strings.TrimPrefix(r.Package, "data.") + "." + r.Name
		switch {
		case r.Error != nil:
			t.Errorf("%s: error: %v", name, r.Error)
		case r.Fail:
			t.Errorf("%s: FAIL", name)
		case r.Skip:
			t.Logf("%s: skipped", name)
		}
	}
	if ran == 0 {
		t.Fatal("no Rego tests found")
	}
	t.Logf("%d Rego tests ran", ran)
}

// TestEveryReasonCodeIsTested keeps the Rego tests honest: each reason code
// a policy can emit must be named in its _test.rego file.
func TestEveryReasonCodeIsTested(t *testing.T) {
	for _, name := range []string{"gateway", "admin"} {
		policy, err := fs.ReadFile(FS, name+".rego")
		if err != nil {
			t.Fatal(err)
		}
		tests, err := fs.ReadFile(FS, name+"_test.rego")
		if err != nil {
			t.Fatal(err)
		}
		codes := reasonCode.FindAllStringSubmatch(string(policy), -1)
		if len(codes) == 0 {
			t.Fatalf("%s.rego emits no reason codes", name)
		}
		for _, c := range codes {
			if !strings.Contains(string(tests), `"`+c[1]+`"`) {
				t.Errorf("%s.rego emits %q but %s_test.rego never checks it", name, c[1], name)
			}
		}
	}
}

var reasonCode = regexp.MustCompile(`(?:reasons|denials) contains "([a-z_]+)"`)
