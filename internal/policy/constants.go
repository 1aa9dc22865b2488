package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// constantRule is a rule whose value is written out in full, such as
// `method_access := {"GET": "read", ...}`: its value is the same in every
// evaluation, yet OPA evaluates it afresh in each one (a child
// evaluation, its bindings and the plugged value: about ten allocations
// for a table of four entries). The engine puts such values in the rule
// memo before each evaluation instead, where OPA finds them as it would
// after evaluating the rule once.
type constantRule struct {
	path  ast.Ref
	value *ast.Term
}

// reachableConstants returns the constant rules the query body can reach,
// following references into data to the rules they may select, as
// gatewayReads does; a query only pays for the constants it may use.
//
// A rule counts as constant only in the plainest shape, where its value is
// beyond doubt: the only definition of its path (no default, no else, no
// other rule at or under the path), a single-value rule without arguments
// whose head names one plain segment, a body of exactly `true`, and a
// ground value. Anything else is evaluated by OPA as before. A `with` that
// replaces the rule (or anything else) opens a new memo frame, in which
// the value put here is not seen.
func reachableConstants(compiler *ast.Compiler, query ast.Body) []constantRule {
	var constants []constantRule
	seen := map[*ast.Rule]struct{}{}
	var pending []*ast.Rule
	visit := func(node any) {
		ast.WalkRefs(node, func(ref ast.Ref) bool {
			if !ref.HasPrefix(ast.DefaultRootRef) {
				return false
			}
			for _, rule := range compiler.GetRulesDynamicWithOpts(ref, ast.RulesOptions{IncludeHiddenModules: true}) {
				if _, ok := seen[rule]; !ok {
					seen[rule] = struct{}{}
					pending = append(pending, rule)
				}
			}
			return false
		})
	}
	visit(query)
	for len(pending) > 0 {
		rule := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if c, ok := constantValue(compiler, rule); ok {
			constants = append(constants, c)
			continue
		}
		for ; rule != nil; rule = rule.Else {
			visit(rule.Body)
			visit(rule.Head)
		}
	}
	return constants
}

// constantValue reports whether rule is a constant rule (see
// reachableConstants) and, if so, its path and value.
func constantValue(compiler *ast.Compiler, rule *ast.Rule) (constantRule, bool) {
	h := rule.Head
	if rule.Default || rule.Else != nil || len(h.Args) > 0 || h.Key != nil || h.Value == nil ||
		len(h.Reference) != 1 || !ast.IsConstant(h.Value.Value) {
		return constantRule{}, false
	}
	if len(rule.Body) != 1 || !rule.Body[0].Equal(ast.NewExpr(ast.BooleanTerm(true))) {
		return constantRule{}, false
	}
	path := rule.Ref().GroundPrefix()
	if !path.IsGround() || len(compiler.GetRulesExact(path)) != 1 {
		return constantRule{}, false
	}
	if node := compiler.RuleTree.Find(path); node == nil || len(node.Children) > 0 {
		return constantRule{}, false
	}
	return constantRule{path: path, value: h.Value}, true
}
