package policy

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/storage/inmem"
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
// `opa test`. The files load and compile as the engine loads them (data
// files, strict mode, input schemas, strict builtin errors), so a policy
// that the gateway would refuse does not pass its tests.
func RunTests(ctx context.Context, source fs.FS) ([]TestResult, error) {
	s, err := ReadSuiteFS(source)
	if err != nil {
		return nil, err
	}
	return s.Run(ctx)
}

// Run runs the suite's tests as RunTests does.
func (s *Suite) Run(ctx context.Context) ([]TestResult, error) {
	src := s.src
	modules, err := withSchemaAnnotations(src.modules)
	if err != nil {
		return nil, err
	}
	store := inmem.NewFromObjectWithOpts(src.data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetCompiler(strictCompiler(ctx, store, txn, true)).
		SetStore(store).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		RunTests(ctx, txn)
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
