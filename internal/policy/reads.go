package policy

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Reads is what the gateway rules of one compiled policy revision can read
// of the per-call part of their input, so that the decision cache keys a
// decision on those fields and no others: a policy that never reads the
// path shares one decision across /items/1 and /items/2.
//
// The rest of the input needs no flag. input.token is covered by the
// token's id and version, and input.route by the service, which every key
// holds. input.now is never keyed, or nothing could be cached: a decision
// is reused until the token's next boundary, the policy's ttl_seconds or
// the gateway's bound, whichever comes first, so a rule that reads the
// time (input.now, time.now_ns) must set ttl_seconds, as before.
type Reads struct {
	Method, Host, Path, RawPath, RemoteIP bool
	// RemoteIPWithCIDRs means the policy reads the client address only
	// in rule bodies that first take an element of input.token.cidrs,
	// as the shipped ip_ok rule does: for a token without CIDRs those
	// bodies fail before the address is read, so only calls of tokens
	// with CIDRs need it in their key.
	RemoteIPWithCIDRs bool
	// AllHeaders means the policy may read any header the route passes
	// it; otherwise it reads at most those named in Headers (sorted, as
	// the policy spells them).
	AllHeaders bool
	Headers    []string
}

// readsAll is the answer whenever the analysis cannot tell what a rule
// reads: every per-call field, so the key is as full as it ever was.
var readsAll = Reads{Method: true, Host: true, Path: true, RawPath: true, RemoteIP: true, AllHeaders: true}

// GatewayReads returns the revision in force and what its gateway rules
// can read, from one snapshot, so a key never pairs one revision with
// another's reads.
func (e *Engine) GatewayReads() (string, *Reads) {
	c := e.current.Load()
	return c.revision, &c.reads
}

// gatewayReads finds every input reference the query body can reach,
// following references into data to the rules they may select (through
// functions, comprehensions, `with` values, else branches and other
// packages alike), and records the fields they read.
//
// It over-approximates: a reference into data with a variable in it
// reaches every rule it could select (OPA's GetRulesDynamic), and a read
// it cannot pin to one field counts as reading all of them. That covers
// input taken whole or with a non-constant key (input[x], walk(input),
// json.marshal(input), object.get(input, ...), input or input.request
// passed to any function) and headers read by a variable name. A `with`
// that replaces any part of input also counts as reading everything: the
// rules below it see a made-up input whose relation to the call's is not
// worth proving.
func gatewayReads(compiler *ast.Compiler, query ast.Body) Reads {
	var r Reads
	headers := map[string]struct{}{}
	seen := map[*ast.Rule]struct{}{}
	var pending []*ast.Rule
	// visit records what node reads; guarded says node is evaluated only
	// once an element of input.token.cidrs exists.
	visit := func(node any, guarded bool) {
		ast.WalkWiths(node, func(w *ast.With) bool {
			if target, ok := w.Target.Value.(ast.Ref); ok && target.HasPrefix(ast.InputRootRef) {
				r = readsAll
			}
			return false
		})
		ast.WalkRefs(node, func(ref ast.Ref) bool {
			switch {
			case ref.HasPrefix(ast.InputRootRef):
				r.add(ref, headers, guarded)
			case ref.HasPrefix(ast.DefaultRootRef):
				for _, rule := range compiler.GetRulesDynamicWithOpts(ref, ast.RulesOptions{IncludeHiddenModules: true}) {
					if _, ok := seen[rule]; !ok {
						seen[rule] = struct{}{}
						pending = append(pending, rule)
					}
				}
			}
			return false
		})
	}
	visit(query, false)
	for len(pending) > 0 {
		rule := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		for ; rule != nil; rule = rule.Else {
			// OPA evaluates a body's expressions in their compiled order
			// and stops at the first that fails, and a head only after its
			// body succeeded.
			guard := cidrGuard(rule.Body)
			for i, expr := range rule.Body {
				visit(expr, guard >= 0 && guard < i)
			}
			visit(rule.Head, guard >= 0)
		}
	}
	if r.AllHeaders {
		return r
	}
	for name := range headers {
		r.Headers = append(r.Headers, name)
	}
	slices.Sort(r.Headers)
	return r
}

// cidrGuard returns the index of the first expression of body that fails
// when input.token.cidrs is empty, or -1. Only the plainest shape counts:
// a non-negated expression (a call, `=` included, or a lone term) with an
// operand that is itself a reference to an element of input.token.cidrs,
// which is undefined, and so fails the expression, when there is none.
// Anything under not, every, or, or inside a comprehension or a
// composite value is not a guard.
func cidrGuard(body ast.Body) int {
	for i, expr := range body {
		if expr.Negated {
			continue
		}
		var operands []*ast.Term
		switch ts := expr.Terms.(type) {
		case *ast.Term:
			operands = []*ast.Term{ts}
		case []*ast.Term:
			operands = ts[1:]
		}
		for _, op := range operands {
			if ref, ok := op.Value.(ast.Ref); ok && len(ref) > len(tokenCIDRs) && ref.HasPrefix(tokenCIDRs) {
				return i
			}
		}
	}
	return -1
}

var tokenCIDRs = ast.MustParseRef("input.token.cidrs")

// add records what one reference into input reads; guarded as for visit.
func (r *Reads) add(ref ast.Ref, headers map[string]struct{}, guarded bool) {
	top, ok := constant(ref, 1)
	if !ok {
		*r = readsAll
		return
	}
	switch top {
	case "token", "route", "now":
		return
	case "request":
	default:
		// The schema has no other field; should one appear, it is read.
		*r = readsAll
		return
	}
	field, ok := constant(ref, 2)
	if !ok {
		r.Method, r.Host, r.Path, r.RawPath, r.RemoteIP, r.AllHeaders = true, true, true, true, true, true
		return
	}
	switch field {
	case "method":
		r.Method = true
	case "host":
		r.Host = true
	case "path":
		r.Path = true
	case "raw_path":
		r.RawPath = true
	case "remote_ip":
		if guarded {
			r.RemoteIPWithCIDRs = true
		} else {
			r.RemoteIP = true
		}
	case "headers":
		if name, ok := constant(ref, 3); ok {
			headers[name] = struct{}{}
		} else {
			r.AllHeaders = true
		}
	default:
		*r = readsAll
	}
}

// constant returns ref[i] when it is a string, false when it is anything
// else (a variable, a reference, another kind of value) or missing: the
// reference then reaches the whole document at ref[:i].
func constant(ref ast.Ref, i int) (string, bool) {
	if i >= len(ref) {
		return "", false
	}
	s, ok := ref[i].Value.(ast.String)
	return string(s), ok
}
