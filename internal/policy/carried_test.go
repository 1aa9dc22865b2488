package policy

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// carriedPaths lists the carried rules of e's gateway query, by name
// within the package.
func carriedPaths(e *Engine) []string {
	var names []string
	if c := e.current.Load().queries[GatewayQuery].carried; c != nil {
		for _, g := range c.groups {
			if g == nil {
				continue
			}
			for _, p := range g.paths {
				names = append(names, p[len(p)-1].Value.(ast.String).String())
			}
		}
	}
	slices.Sort(names)
	return names
}

func TestShippedPolicyCarriedRules(t *testing.T) {
	e, err := NewEngine(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	// reasons reads the client address (ip_ok), method_access is a
	// constant (constants.go).
	want := []string{`"access"`, `"required_scope"`, `"scope"`, `"scope_granted"`, `"service_bound"`}
	if got := carriedPaths(e); !slices.Equal(got, want) {
		t.Fatalf("carried %v, want %v", got, want)
	}
}

// A rule is carried only when everything it can reach reads nothing but
// input.token, input.route and input.request.method, and calls nothing
// whose answer is not a function of its arguments.
func TestCarriedRulesExclude(t *testing.T) {
	const src = `package tokengate.gateway

import rego.v1

reasons := set()

# Carried (reasons too: it reads nothing).
bound if input.route.service in input.token.services
writes if input.request.method != "GET"
from_data := count(data.limits)
via_function := f(input.token.id)
f(x) := upper(x)

# Not carried, and why.
path_read if input.request.path == "/"
now_read if input.now > 0
clock if time.now_ns() > 0
random := rand.intn("x", 10)
whole if count(input) > 0
dynamic if input[_] == 1
helper_reads_path := g(input.token.id)
g(x) := concat(x, [input.request.raw_path])
uses_with if bound with input.route.service as "other"
jwt if io.jwt.decode_verify("x", {"secret": "s"})
x509 if crypto.x509.parse_and_verify_certificates(input.token.id)
uses_not_carried if not path_read
`
	fsys := fstest.MapFS{
		"gateway.rego": {Data: []byte(src)},
		"data.json":    {Data: []byte(`{"limits": [1, 2]}`)},
	}
	query := "reasons = data.tokengate.gateway.reasons"
	for _, name := range []string{"bound", "writes", "from_data", "via_function", "path_read", "now_read", "clock", "random", "whole", "dynamic", "helper_reads_path", "uses_with", "jwt", "x509", "uses_not_carried"} {
		query += "; " + name + " = [x | x = data.tokengate.gateway." + name + "]"
	}
	e, err := NewEngine(fsys)
	if err != nil {
		t.Fatal(err)
	}
	c := e.current.Load()
	body, err := c.compiler.QueryCompiler().Compile(ast.MustParseBody(query))
	if err != nil {
		t.Fatal(err)
	}
	carried := findCarriedRules(c.compiler, body, nil)
	var got []string
	for _, g := range carried.groups {
		if g != nil {
			for _, p := range g.paths {
				got = append(got, string(p[len(p)-1].Value.(ast.String)))
			}
		}
	}
	slices.Sort(got)
	want := []string{"bound", "from_data", "reasons", "via_function", "writes"}
	if !slices.Equal(got, want) {
		t.Fatalf("carried %v, want %v", got, want)
	}
}

// A rule that prints is evaluated on every call (print() is compiled in
// only with a print logger), so each call logs its line; without a logger
// the same rule is carried.
func TestCarriedRulesKeepPrintOutput(t *testing.T) {
	const src = `package tokengate.gateway

reasons contains "unbound" if not bound

bound if {
	print("checking", input.token.id)
	input.route.service in input.token.services
}
`
	fsys := fstest.MapFS{"gateway.rego": {Data: []byte(src)}}
	core, logs := observer.New(zap.InfoLevel)
	e, err := NewEngine(fsys, WithPrintLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	if got := carriedPaths(e); len(got) != 0 {
		t.Fatalf("with a print logger, carried %v", got)
	}
	now := time.Now()
	term := TokenTerm(sampleToken(now))
	for range 3 {
		d, err := e.Decide(context.Background(), GatewayQuery, GatewayInput(term, Request{Method: "GET"}, "billing", now))
		if err != nil || !d.Allow {
			t.Fatal(d, err)
		}
	}
	if n := logs.FilterMessage("checking tok_x").Len(); n != 3 {
		t.Fatalf("%d print lines for 3 calls, want 3", n)
	}
	quiet, err := NewEngine(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := carriedPaths(quiet); !slices.Equal(got, []string{`"bound"`, `"reasons"`}) {
		t.Fatalf("without a print logger, carried %v, want bound and reasons", got)
	}
	// reasons itself, a set, is carried then: each service's own.
	for range 2 {
		for service, want := range map[string][]string{"billing": nil, "search": {"unbound"}} {
			d, err := quiet.Decide(context.Background(), GatewayQuery, GatewayInput(term, Request{Method: "GET"}, service, now))
			if err != nil || !slices.Equal(d.Reasons, want) {
				t.Fatalf("service %s: got %+v, %v; want reasons %v", service, d, err, want)
			}
		}
	}
}

// Calls that share the token, route and method terms reuse the carried
// values; the decisions are the policy's for each call's own input,
// including when only a part a carried rule does not read changes, and
// when the token changes to a new version.
func TestCarriedValuesFollowInput(t *testing.T) {
	e, err := NewEngine(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	readOnly := sampleToken(now)
	readOnly.CIDRs = nil
	writer := readOnly.Clone()
	writer.Scopes = []string{"billing:write"}
	cases := []struct {
		tok     *store.Token
		method  string
		service string
		reasons []string
		scope   string
	}{
		{readOnly, "GET", "billing", nil, "billing:read"},
		{readOnly, "GET", "billing", nil, "billing:read"},
		{readOnly, "POST", "billing", []string{"scope_missing"}, "billing:write"},
		{readOnly, "GET", "search", []string{"scope_missing", "service_not_bound"}, "search:read"},
		{writer, "POST", "billing", nil, "billing:write"},
		{writer, "GET", "billing", nil, "billing:read"},
		{readOnly, "POST", "billing", []string{"scope_missing"}, "billing:write"},
		{writer, "delete", "billing", []string{"scope_missing"}, "billing:delete"},
	}
	terms := map[*store.Token]*ast.Term{}
	for _, c := range cases {
		if terms[c.tok] == nil {
			terms[c.tok] = TokenTerm(c.tok)
		}
	}
	// Four callers at once (go test -race checks the kept values are
	// shared safely), each twice over the cases: with the shared token
	// terms, then with equal ones built afresh.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for round := range 2 {
				for i, c := range cases {
					term := terms[c.tok]
					if round == 1 {
						term = TokenTerm(c.tok) // equal, not the same term
					}
					d, err := e.Decide(context.Background(), GatewayQuery, GatewayInput(term, Request{Method: c.method, Path: "/x", RemoteIP: "10.0.0.1"}, c.service, now))
					if err != nil {
						t.Error(err)
						return
					}
					if !slices.Equal(d.Reasons, c.reasons) || d.Scope != c.scope {
						t.Errorf("round %d, case %d: got %v %q, want %v %q", round, i, d.Reasons, d.Scope, c.reasons, c.scope)
					}
				}
			}
		})
	}
	wg.Wait()
}

// An optional rule whose value is in the rule memo before the evaluation
// (a constant, or a carried value, defined or undefined) is not asked
// again; the decision carries that value, and a value of the wrong kind
// is still an error.
func TestOptionalRulesFromTheMemo(t *testing.T) {
	const src = `package tokengate.gateway

reasons := set()

scope := "fixed"

ttl_seconds := 7 if input.token.uses > 100
`
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	light, heavy := sampleToken(now), sampleToken(now)
	heavy.Uses = 101
	for round := range 2 {
		for _, c := range []struct {
			tok *store.Token
			ttl time.Duration
		}{{light, 0}, {heavy, 7 * time.Second}} {
			d, err := e.Decide(context.Background(), GatewayQuery, GatewayInput(TokenTerm(c.tok), Request{Method: "GET"}, "billing", now))
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allow || d.Scope != "fixed" || d.TTL != c.ttl {
				t.Errorf("round %d, uses %d: got %+v, want scope fixed, ttl %s", round, c.tok.Uses, d, c.ttl)
			}
		}
	}

	// A scope of the wrong type that the type checker cannot see at load
	// (it comes from data, which has no schema) is an error when read.
	wrong, err := NewEngine(fstest.MapFS{
		"gateway.rego": {Data: []byte("package tokengate.gateway\nreasons := set()\nscope := data.wrong\n")},
		"data.json":    {Data: []byte(`{"wrong": ["a", "set"]}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		if d, err := wrong.Decide(context.Background(), GatewayQuery, GatewayInput(TokenTerm(light), Request{Method: "GET"}, "billing", now)); err == nil {
			t.Fatalf("round %d: a set for scope gave %+v, want an error", round, d)
		}
	}
}

// Carrying a rule is sound only if every built-in it reaches answers the
// same for the same arguments. OPA marks the non-deterministic ones, and
// unsafeBuiltins adds those it does not mark (they read the clock); every
// other built-in of this OPA version was reviewed and is listed in
// pure_builtins.txt. A new OPA version with a built-in in none of the
// three fails here until someone has looked at it (until then, rules
// reaching it are not carried).
func TestEveryBuiltinIsReviewed(t *testing.T) {
	reviewed := pureBuiltins
	for _, b := range ast.Builtins {
		if b.Nondeterministic || unsafeBuiltins[b.Name] {
			if reviewed[b.Name] {
				t.Errorf("%s is listed as pure but is non-deterministic or unsafe", b.Name)
			}
			continue
		}
		if !reviewed[b.Name] {
			t.Errorf("built-in %s is neither reviewed as pure (pure_builtins.txt) nor non-deterministic nor in unsafeBuiltins: check whether its answer depends on anything but its arguments", b.Name)
		}
	}
}

// A built-in nobody has reviewed (as after an OPA upgrade) keeps the rules
// reaching it from being carried, before TestEveryBuiltinIsReviewed is
// even looked at.
func TestUnreviewedBuiltinIsNotCarried(t *testing.T) {
	const src = `package tokengate.gateway

import rego.v1

reasons := set()

shouting := upper(input.request.method)
`
	query := "reasons = data.tokengate.gateway.reasons; s = [x | x = data.tokengate.gateway.shouting]"
	carriedOf := func() []string {
		e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(src)}})
		if err != nil {
			t.Fatal(err)
		}
		c := e.current.Load()
		body, err := c.compiler.QueryCompiler().Compile(ast.MustParseBody(query))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, g := range findCarriedRules(c.compiler, body, nil).groups {
			if g != nil {
				for _, p := range g.paths {
					got = append(got, string(p[len(p)-1].Value.(ast.String)))
				}
			}
		}
		slices.Sort(got)
		return got
	}
	if got := carriedOf(); !slices.Contains(got, "shouting") {
		t.Fatalf("carried %v: upper is reviewed, shouting should be carried", got)
	}
	delete(pureBuiltins, "upper")
	t.Cleanup(func() { pureBuiltins["upper"] = true })
	if got := carriedOf(); slices.Contains(got, "shouting") {
		t.Fatalf("carried %v: shouting calls a built-in nobody reviewed", got)
	}
}
