package policy

import (
	_ "embed"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Carried rules: rule values kept from one evaluation to the next.
//
// Most of an uncached gateway decision is OPA evaluating rules whose value
// depends on nothing that changes from call to call for the same token,
// service and method: whether the route's service is among the token's,
// which scope a method needs, whether the token holds it (in the shipped
// policy, service_bound, access, required_scope, scope_granted and scope:
// about 60 of its 140 allocations). Such a rule's value is a function of
// the policy revision (rules and data) and of the parts of input it reads,
// and of nothing else, provided its evaluation is deterministic. The
// engine keeps, per revision, the values OPA's evaluator put in its rule
// memo for those rules, keyed by the values of the parts of input they
// read, and puts them back in the memo of the next evaluation whose input
// has the same values there, where OPA finds them as it would after
// evaluating the rule itself (as constants.go does for constant rules).
// Every other rule, and every rule under a `with`, which opens a memo frame
// of its own, is evaluated by OPA as before.
//
// A rule is carried only when everything its evaluation can reach (its
// definitions, else branches and default, and transitively the rules and
// functions they refer to, found as gatewayReads finds them) is beyond
// doubt:
//   - input is read only under input.token, input.route and
//     input.request.method, each through a constant key, so the key of a
//     kept value is those documents (whichever of the three the rule reads);
//     input.now, the rest of input.request, input whole or under a
//     variable key are not carried;
//   - no `with` anywhere;
//   - no built-in whose answer is not a function of its arguments: OPA's
//     non-deterministic ones (time.now_ns, rand.intn, http.send, ...),
//     io.jwt.decode_verify (it reads the evaluation's time), the x509
//     chain verifications (they read the clock), and print
//     (compiled in only with a print logger: carrying a rule that prints
//     would drop its lines from later calls) and trace;
//   - its path is ground, holds no function and has no rule below it.
//
// Values are taken only from an evaluation that succeeded, from the
// outermost memo frame, and only when they were missing at its start. OPA
// memoises a complete rule only after checking its definitions for
// conflicts, unless they all give the same value (early exit), so a kept
// value is the one OPA would compute again.
//
// Input must not be changed after it is given to Decide (the gateway
// shares token and route terms between calls): a value is found again by
// the input's hash and then compared whole (by pointer first).

// The parts of input a carried rule may read.
const (
	carryToken = 1 << iota
	carryRoute
	carryMethod
	carrySets = 1 << 3 // number of subsets of the three
)

// carriedRules are the rules of one query that are carried, grouped by
// the parts of input they read.
type carriedRules struct {
	groups [carrySets]*carriedGroup
}

// carriedGroup holds the rules reading the same parts of input and the
// values kept for them.
type carriedGroup struct {
	reads int
	paths []ast.Ref

	mu      sync.RWMutex
	entries map[int][]*carriedEntry
	size    int
}

// maxCarriedEntries bounds a group's kept values. Keys hold token terms,
// so a bound is also a bound on the old token versions kept alive. Past
// it the group starts again empty.
const maxCarriedEntries = 4096

type carriedEntry struct {
	key    carriedKey
	values []carriedValue
}

type carriedValue struct {
	path  ast.Ref
	value *ast.Term // nil: the rule is undefined
}

// carriedKey is input's token, route and method, nil where undefined
// or not read by the group.
type carriedKey [3]*ast.Term

func (k carriedKey) hash() int {
	h := 0
	for i, t := range k {
		if t != nil {
			h += (i + 1) * 0x9e3779b1 * t.Hash()
		}
	}
	return h
}

func (k carriedKey) equal(o carriedKey) bool {
	for i := range k {
		if (k[i] == nil) != (o[i] == nil) || k[i] != nil && !k[i].Equal(o[i]) {
			return false
		}
	}
	return true
}

// keyOf returns the parts of input g reads.
func (g *carriedGroup) keyOf(input ast.Value) carriedKey {
	var k carriedKey
	obj, ok := input.(ast.Object)
	if !ok {
		return k
	}
	if g.reads&carryToken != 0 {
		k[0] = obj.Get(keyToken)
	}
	if g.reads&carryRoute != 0 {
		k[1] = obj.Get(keyRoute)
	}
	if g.reads&carryMethod != 0 {
		if req := obj.Get(keyRequest); req != nil {
			k[2] = req.Get(keyMethod)
		}
	}
	return k
}

func (g *carriedGroup) lookup(k carriedKey, h int) *carriedEntry {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, e := range g.entries[h] {
		if e.key.equal(k) {
			return e
		}
	}
	return nil
}

// keep records the values rules holds for g's paths under k.
func (g *carriedGroup) keep(k carriedKey, h int, rules *ruleCache) {
	var values []carriedValue
	for _, p := range g.paths {
		if v, ok := rules.base(p); ok {
			values = append(values, carriedValue{path: p, value: v})
		}
	}
	if len(values) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range g.entries[h] {
		if e.key.equal(k) {
			return // kept by a concurrent call
		}
	}
	if g.entries == nil || g.size >= maxCarriedEntries {
		g.entries, g.size = map[int][]*carriedEntry{}, 0
	}
	g.entries[h] = append(g.entries[h], &carriedEntry{key: k, values: values})
	g.size++
}

// carriedState is what Decide found at the start of an evaluation: per
// group, the key and whether its values were there.
type carriedState struct {
	keys   [carrySets]carriedKey
	hashes [carrySets]int
	missed [carrySets]bool
}

// restore puts the kept values that match input in rules' outermost
// frame and notes in s the groups that had none.
func (c *carriedRules) restore(input ast.Value, rules *ruleCache, s *carriedState) {
	for i, g := range c.groups {
		if g == nil {
			continue
		}
		k := g.keyOf(input)
		h := k.hash()
		s.keys[i], s.hashes[i] = k, h
		e := g.lookup(k, h)
		s.missed[i] = e == nil
		if e != nil {
			for _, v := range e.values {
				rules.Put(v.path, v.value)
			}
		}
	}
}

// keep records, after an evaluation that succeeded, the values of the
// groups restore found missing.
func (c *carriedRules) keep(rules *ruleCache, s *carriedState) {
	for i, g := range c.groups {
		if g != nil && s.missed[i] {
			g.keep(s.keys[i], s.hashes[i], rules)
		}
	}
}

// empty reports whether no rule is carried.
func (c *carriedRules) empty() bool {
	for _, g := range c.groups {
		if g != nil {
			return false
		}
	}
	return true
}

// pureBuiltins are the built-ins reviewed as functions of their
// arguments alone (pure_builtins.txt; TestEveryBuiltinIsReviewed keeps
// it complete).
var pureBuiltins = func() map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(pureBuiltinsList, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			m[line] = true
		}
	}
	return m
}()

//go:embed pure_builtins.txt
var pureBuiltinsList string

// unsafeBuiltins are the built-ins whose answer is not a function of
// their arguments, besides those OPA marks non-deterministic.
var unsafeBuiltins = map[string]bool{
	ast.JWTDecodeVerify.Name: true, // reads the evaluation's time
	// Without a CurrentTime option, Go's x509 verification reads the clock.
	ast.CryptoX509ParseAndVerifyCertificates.Name:            true,
	ast.CryptoX509ParseAndVerifyCertificatesWithOptions.Name: true,
	ast.Print.Name:         true,
	ast.InternalPrint.Name: true,
	ast.Trace.Name:         true,
}

// ruleFacts is what one rule (with its else branches) reads and refers
// to, not following the references.
type ruleFacts struct {
	reads    int
	unsafe   bool
	refersTo []*ast.Rule
}

// findCarriedRules returns the rules of the query body to carry; see the
// comment at the top of this file for which.
func findCarriedRules(compiler *ast.Compiler, query ast.Body, constants []constantRule) *carriedRules {
	facts := map[*ast.Rule]*ruleFacts{}
	factsOf := func(rule *ast.Rule) *ruleFacts {
		if f, ok := facts[rule]; ok {
			return f
		}
		f := &ruleFacts{}
		facts[rule] = f
		for r := rule; r != nil; r = r.Else {
			f.add(compiler, r.Body)
			f.add(compiler, r.Head)
		}
		return f
	}
	isConstant := map[string]bool{}
	for _, k := range constants {
		isConstant[k.path.String()] = true
	}

	// The candidates: every rule path the query can reach.
	var paths []ast.Ref
	seenPath := map[string]bool{}
	seen := map[*ast.Rule]bool{}
	pending := append([]*ast.Rule(nil), (&ruleFacts{}).add(compiler, query).refersTo...)
	for len(pending) > 0 {
		rule := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if seen[rule] {
			continue
		}
		seen[rule] = true
		if p := rule.Ref().GroundPrefix(); !seenPath[p.String()] {
			seenPath[p.String()] = true
			paths = append(paths, p)
		}
		pending = append(pending, factsOf(rule).refersTo...)
	}

	c := &carriedRules{}
	for _, p := range paths {
		if isConstant[p.String()] || !p.IsGround() {
			continue
		}
		node := compiler.RuleTree.Find(p)
		if node == nil || len(node.Children) > 0 || len(node.Values) == 0 {
			continue
		}
		reads, ok := 0, true
		visited := map[*ast.Rule]bool{}
		stack := []*ast.Rule{}
		for _, r := range node.Values {
			if len(r.Head.Args) > 0 {
				ok = false
			}
			stack = append(stack, r)
		}
		for ok && len(stack) > 0 {
			r := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if visited[r] {
				continue
			}
			visited[r] = true
			f := factsOf(r)
			if f.unsafe {
				ok = false
			}
			reads |= f.reads
			stack = append(stack, f.refersTo...)
		}
		if !ok {
			continue
		}
		g := c.groups[reads]
		if g == nil {
			g = &carriedGroup{reads: reads}
			c.groups[reads] = g
		}
		g.paths = append(g.paths, p)
	}
	return c
}

// add records what node reads and refers to.
func (f *ruleFacts) add(compiler *ast.Compiler, node any) *ruleFacts {
	ast.WalkWiths(node, func(*ast.With) bool {
		f.unsafe = true
		return true
	})
	ast.WalkRefs(node, func(ref ast.Ref) bool {
		switch {
		case ref.HasPrefix(ast.InputRootRef):
			r, ok := carriedRead(ref)
			f.reads |= r
			f.unsafe = f.unsafe || !ok
		case ref.HasPrefix(ast.DefaultRootRef):
			f.refersTo = append(f.refersTo, compiler.GetRulesDynamicWithOpts(ref, ast.RulesOptions{IncludeHiddenModules: true})...)
		default:
			// A built-in's name, or a local variable's reference.
			// Only built-ins reviewed as pure are allowed: one this
			// list does not know (a newer OPA's) is taken as unsafe.
			if b, ok := ast.BuiltinMap[ref.String()]; ok && (b.Nondeterministic || unsafeBuiltins[b.Name] || !pureBuiltins[b.Name]) {
				f.unsafe = true
			}
		}
		return false
	})
	return f
}

// carriedRead returns the part of input a reference into input reads, and
// false when it is not one a carried rule may read.
func carriedRead(ref ast.Ref) (int, bool) {
	top, ok := constant(ref, 1)
	if !ok {
		return 0, false
	}
	switch top {
	case "token":
		return carryToken, true
	case "route":
		return carryRoute, true
	case "request":
		if field, ok := constant(ref, 2); ok && field == "method" {
			return carryMethod, true
		}
	}
	return 0, false
}
