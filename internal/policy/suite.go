package policy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// A Suite is a policy folder or an OPA bundle read with its _test.rego
// files, for policy-test: the tests to run, and the reason codes its
// policies emit that no test names.
type Suite struct {
	src *loaded
}

// ReadSuite reads location: a folder of policies, or a bundle file as
// `opa build` writes it (a .tar.gz, which keeps the _test.rego files of
// the folder it was built from). A signed bundle's signature is not
// checked here: the tests say what the policy does, not where it came from.
func ReadSuite(location string) (*Suite, error) {
	info, err := os.Stat(location)
	if err != nil {
		return nil, fmt.Errorf("reading policy tests: %v", err)
	}
	if info.IsDir() {
		return ReadSuiteFS(os.DirFS(location))
	}
	raw, err := os.ReadFile(location)
	if err != nil {
		return nil, fmt.Errorf("reading bundle: %v", err)
	}
	b, err := bundle.NewReader(bytes.NewReader(raw)).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotations(true).
		Read()
	if err != nil {
		return nil, fmt.Errorf("reading bundle %s: %v", location, err)
	}
	src, err := fromBundle(b, "")
	if err != nil {
		return nil, err
	}
	for _, m := range b.Modules {
		if strings.HasSuffix(m.Path, "_test.rego") {
			src.modules[m.Path] = m.Parsed
		}
	}
	return &Suite{src: src}, nil
}

// ReadSuiteFS reads the policy folder source as ReadSuite reads a folder.
func ReadSuiteFS(source fs.FS) (*Suite, error) {
	src, err := load(source, true)
	if err != nil {
		return nil, fmt.Errorf("reading policy tests: %v", err)
	}
	return &Suite{src: src}, nil
}

// Untested is a reason code a policy file can emit that its tests never
// name.
type Untested struct {
	// Policy is the policy file, Tests the _test.rego file beside it
	// (which may not exist).
	Policy string `json:"policy"`
	Tests  string `json:"tests"`
	Reason string `json:"reason"`
}

// reasonSets are the rules whose string elements are reason codes: the
// gateway's reasons and the admin policy's denials.
var reasonSets = []string{"reasons", "denials"}

// Untested returns, in file order, every reason code a policy file adds
// to reasons or denials with a literal (`reasons contains "code" if ...`)
// that no string in the file's _test.rego names. A policy file without a
// _test.rego file has all its codes untested. A reason a test never
// mentions is one nobody showed the policy can emit, or withholds.
func (s *Suite) Untested() []Untested {
	var out []Untested
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range s.src.modules {
			if IsPolicyFile(n) && !yield(n) {
				return
			}
		}
	}) {
		testsFile := strings.TrimSuffix(name, ".rego") + "_test.rego"
		named := stringsIn(s.src.modules[testsFile])
		for _, code := range emitted(s.src.modules[name]) {
			if !named[code] {
				// A bundle's module paths start with a slash.
				out = append(out, Untested{Policy: strings.TrimPrefix(name, "/"), Tests: strings.TrimPrefix(testsFile, "/"), Reason: code})
			}
		}
	}
	return out
}

// emitted lists the literal reason codes m's reason-set rules add, once
// each, in source order.
func emitted(m *ast.Module) []string {
	var codes []string
	for _, r := range m.Rules {
		ref := r.Head.Ref()
		if len(ref) != 1 || r.Head.Key == nil || !slices.Contains(reasonSets, ref[0].Value.String()) {
			continue
		}
		if code, ok := r.Head.Key.Value.(ast.String); ok && !slices.Contains(codes, string(code)) {
			codes = append(codes, string(code))
		}
	}
	return codes
}

// stringsIn is every string literal in m (none when m is nil).
func stringsIn(m *ast.Module) map[string]bool {
	found := map[string]bool{}
	if m == nil {
		return found
	}
	ast.WalkTerms(m, func(t *ast.Term) bool {
		if s, ok := t.Value.(ast.String); ok {
			found[string(s)] = true
		}
		return false
	})
	return found
}
