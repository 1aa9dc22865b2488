package policy

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Name   string
	Passed bool
	Detail string
}

// RunTests runs every test_ rule in the .rego files of source (policies
// and their _test.rego files) with OPA's own test runner, the one behind
// `opa test`.
func RunTests(ctx context.Context, source fs.FS) ([]TestResult, error) {
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(source, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return err
		}
		src, err := fs.ReadFile(source, p)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(p, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules[p] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading policy tests: %v", err)
	}
	ch, err := tester.NewRunner().SetModules(modules).RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("running policy tests: %v", err)
	}
	var out []TestResult
	for r := range ch {
		res := TestResult{Name: strings.TrimPrefix(r.Package, "data.") + "." + r.Name, Passed: r.Pass()}
		switch {
		case r.Error != nil:
			res.Detail = r.Error.Error()
		case r.Fail:
			res.Detail = "failed"
		}
		out = append(out, res)
	}
	return out, nil
}
