package policy

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/types"
)

// The rules whose values the engine reads, with the type each must have.
// A policy that gives one another type (reasons := "none", a set of
// numbers, ttl_seconds := "1h") would load and then fail every decision
// with an error, which the gateway answers with 503 for every call; OPA's
// type checker already knows each rule's type when compilation ends, so
// such a policy is refused at load instead, and the previous revision
// keeps serving.
var outputTypes = []struct {
	ref  ast.Ref
	want string
	fits func(types.Type) bool
}{
	{ast.MustParseRef("data.tokengate.gateway.reasons"), "a set of strings", stringCollection},
	{ast.MustParseRef("data.tokengate.gateway.scope"), "a string", isType[types.String]},
	{ast.MustParseRef("data.tokengate.gateway.ttl_seconds"), "a number", isType[types.Number]},
	{ast.MustParseRef("data.tokengate.gateway.rate_limit"), `an object {"requests": number, "window": string}`, rateLimitObject},
	{ast.MustParseRef(AdminQuery), `an object {"allow": boolean, "reasons": set of strings, "auto_approve": boolean, "ttl_seconds": number, "rate_limit": {"requests": number, "window": string} or {}}`, adminDecision},
}

// checkOutputTypes refuses a policy whose gateway or admin outputs cannot
// have the type the engine reads, naming the rule's file:line. A type the
// checker could not narrow (a value taken from data, which has no schema)
// passes: only what is certainly wrong is refused here, and Decide still
// checks every value it reads.
func checkOutputTypes(compiler *ast.Compiler) error {
	for _, o := range outputTypes {
		rules := compiler.GetRulesExact(o.ref)
		if len(rules) == 0 {
			continue
		}
		got := compiler.TypeEnv.GetByRef(o.ref)
		if conforms(got, o.fits) {
			continue
		}
		at := rules[0]
		// Point at the definition that is wrong when its value alone
		// shows it (a constant), else at the first one.
		for _, r := range rules {
			if t := constantType(compiler, r); t != nil && !conforms(t, o.fits) {
				at = r
				break
			}
		}
		return fmt.Errorf("%s: %s is %s, want %s", at.Location, o.ref, types.Sprint(got), o.want)
	}
	return nil
}

// constantType is the type of what rule r alone gives when its head is a
// constant (reasons contains 7, scope := 3), else nil.
func constantType(compiler *ast.Compiler, r *ast.Rule) types.Type {
	if r.Head.RuleKind() == ast.MultiValue {
		if r.Head.Key == nil || !r.Head.Key.IsGround() {
			return nil
		}
		return types.NewSet(compiler.TypeEnv.GetByValue(r.Head.Key.Value))
	}
	if r.Head.Value == nil || !r.Head.Value.IsGround() {
		return nil
	}
	return compiler.TypeEnv.GetByValue(r.Head.Value.Value)
}

// conforms reports whether a value of static type got can be one fits
// accepts: an unknown type (any) can, a union can when each of its
// members can.
func conforms(got types.Type, fits func(types.Type) bool) bool {
	if a, ok := got.(types.Any); ok {
		if len(a) == 0 {
			return true
		}
		for _, m := range a {
			if !conforms(m, fits) {
				return false
			}
		}
		return true
	}
	return got == nil || fits(got)
}

func isType[T any](t types.Type) bool {
	_, ok := t.(T)
	return ok
}

func isString(t types.Type) bool { return conforms(t, isType[types.String]) }

// stringCollection is what parseReasons reads: a set or an array of
// strings.
func stringCollection(t types.Type) bool {
	switch c := t.(type) {
	case *types.Set:
		return isString(c.Of())
	case *types.Array:
		for i := range c.Len() {
			if !isString(c.Select(i)) {
				return false
			}
		}
		return c.Dynamic() == nil || isString(c.Dynamic())
	}
	return false
}

// adminDecision is what parseAdmin reads: an object whose allow is a
// boolean and whose reasons, auto_approve and ttl_seconds, when there,
// are a string collection, a boolean and a number.
func adminDecision(t types.Type) bool {
	obj, ok := t.(*types.Object)
	if !ok {
		return false
	}
	fields := []struct {
		name     string
		fits     func(types.Type) bool
		required bool
	}{
		{"allow", isType[types.Boolean], true},
		{"reasons", stringCollection, false},
		{"auto_approve", isType[types.Boolean], false},
		{"ttl_seconds", isType[types.Number], false},
		{"rate_limit", rateLimitOrEmpty, false},
	}
	for _, f := range fields {
		v := obj.Select(f.name)
		if v == nil {
			if f.required && obj.DynamicProperties() == nil {
				return false
			}
			continue
		}
		if !conforms(v, f.fits) {
			return false
		}
	}
	return true
}

// rateLimitOrEmpty is the admin decision's rate_limit: a limit, or an
// empty object for none.
func rateLimitOrEmpty(t types.Type) bool {
	if obj, ok := t.(*types.Object); ok && len(obj.Keys()) == 0 && obj.DynamicProperties() == nil {
		return true
	}
	return rateLimitObject(t)
}

// rateLimitObject is what parseRateLimit reads: an object whose requests
// is a number and whose window is a string. Which numbers and strings is
// checked on every decision.
func rateLimitObject(t types.Type) bool {
	obj, ok := t.(*types.Object)
	if !ok {
		return false
	}
	for _, f := range []struct {
		name string
		fits func(types.Type) bool
	}{{"requests", isType[types.Number]}, {"window", isType[types.String]}} {
		v := obj.Select(f.name)
		if v == nil {
			if obj.DynamicProperties() == nil {
				return false
			}
			continue
		}
		if !conforms(v, f.fits) {
			return false
		}
	}
	return true
}
