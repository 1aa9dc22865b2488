package policy

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// Evaluator is the seam between the engine and OPA: it evaluates one
// query of a compiled revision for one input. Two implement it:
//
//   - fastEvaluator (the default): OPA's topdown driven directly, with
//     OPA's per-evaluation caches replaced by cheaper ones (vcache.go)
//     and the rule memo primed with constant rules (constants.go) and
//     values carried from the previous call with the same token, route
//     and method (carried.go). This mirrors OPA's internal memo
//     behaviour, so it is what an OPA upgrade can break.
//   - preparedEvaluator (WithPlainEvaluator): OPA's public rego API,
//     one prepared query per revision and rego.EvalParsedInput per call,
//     as opa-envoy-plugin does. Nothing in it depends on OPA's internals.
//
// TestEvaluatorsAgree runs the same inputs through both. Upgrading OPA is
// one step: bump it in go.mod and run go test ./internal/policy; when the
// evaluators disagree, the fast one is what to fix (or to switch off with
// WithPlainEvaluator until it is).
type Evaluator interface {
	decide(ctx context.Context, c *compiled, query string, q *query, input ast.Value) (Decision, error)
}

type fastEvaluator struct{}

type preparedEvaluator struct{}

// WithPlainEvaluator makes the engine evaluate with OPA's prepared
// queries (preparedEvaluator) instead of the fast evaluator.
func WithPlainEvaluator() Option { return func(e *Engine) { e.plain = true } }

func (e *Engine) evaluator() Evaluator {
	if e.plain {
		return preparedEvaluator{}
	}
	return fastEvaluator{}
}

// prepare prepares body against the revision's compiler and data.
func prepare(c *compiled, body ast.Body, printHook print.Hook) (*rego.PreparedEvalQuery, error) {
	opts := []func(*rego.Rego){
		rego.ParsedQuery(body), rego.Compiler(c.compiler), rego.Store(c.data),
		rego.StrictBuiltinErrors(true),
	}
	if printHook != nil {
		opts = append(opts, rego.EnablePrintStatements(true), rego.PrintHook(printHook))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		return nil, err
	}
	return &pq, nil
}

// decide evaluates the prepared query and reads its first result as the
// fast evaluator's parse does.
func (preparedEvaluator) decide(ctx context.Context, _ *compiled, query string, q *query, input ast.Value) (Decision, error) {
	rs, err := q.prepared.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return Decision{}, fmt.Errorf("evaluating %s: %v", query, err)
	}
	if len(rs) == 0 {
		return Decision{}, fmt.Errorf("%s: %w", query, ErrNoDecision)
	}
	bindings := make(map[ast.Var]*ast.Term, len(rs[0].Bindings))
	for name, v := range rs[0].Bindings {
		value, err := ast.InterfaceToValue(v)
		if err != nil {
			return Decision{}, fmt.Errorf("evaluating %s: %v", query, err)
		}
		bindings[ast.Var(name)] = ast.NewTerm(value)
	}
	var known knownValues
	return q.parse(bindings, &known)
}

var (
	_ Evaluator = fastEvaluator{}
	_ Evaluator = preparedEvaluator{}
)
