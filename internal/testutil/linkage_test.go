// Package testutil_test checks that the helpers under internal/testutil stay
// out of every binary this repository builds.
package testutil_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tokengate/caddy-tokengate"

// deps lists, for every package the binaries in patterns link, the package
// and the packages it imports.
func deps(t *testing.T, patterns ...string) map[string][]string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// The product binary links OPA's tester (for policy-test), which imports
// testing; what must never be there is a package of ours that does, or any
// test helper.
func TestProductBinaryLinksNoTestHelper(t *testing.T) {
	for pkg, imports := range deps(t, "./cmd/caddy") {
		if strings.HasPrefix(pkg, module+"/internal/testutil") {
			t.Errorf("cmd/caddy links test helper %s", pkg)
		}
		if strings.HasPrefix(pkg, module) {
			for _, imp := range imports {
				if imp == "testing" {
					t.Errorf("cmd/caddy links %s, which imports testing", pkg)
				}
			}
		}
	}
}

func TestExampleBinariesLinkNoTesting(t *testing.T) {
	for pkg := range deps(t, "./examples/...") {
		if pkg == "testing" {
			t.Error("a binary under examples/ links testing")
		}
	}
}
