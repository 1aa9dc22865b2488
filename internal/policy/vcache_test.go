package policy

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// OPA's evaluator builds function-call cache keys in one buffer it reuses,
// so the cache must keep its own copy of every ref it is given.
func TestRuleCacheKeepsItsOwnCopyOfRefs(t *testing.T) {
	c := getRuleCache()
	defer c.release()
	key := ast.MustParseRef(`data.p.f["a"]`)
	c.Put(key, ast.BooleanTerm(true))
	key[len(key)-1] = ast.StringTerm("b") // the evaluator reusing its buffer
	if v, _ := c.Get(ast.MustParseRef(`data.p.f["a"]`)); v == nil || !v.Equal(ast.BooleanTerm(true)) {
		t.Fatalf(`f("a") = %v after the key buffer changed, want true`, v)
	}
	if v, undefined := c.Get(ast.MustParseRef(`data.p.f["b"]`)); v != nil || undefined {
		t.Fatalf(`f("b") = %v, %v: it was never cached`, v, undefined)
	}
}

func TestRuleCacheFramesAndUndefined(t *testing.T) {
	c := getRuleCache()
	ref := ast.MustParseRef("data.p.x")
	c.Put(ref, nil)
	if v, undefined := c.Get(ref); v != nil || !undefined {
		t.Fatalf("got %v, %v; want recorded as undefined", v, undefined)
	}
	if v, undefined := c.Get(ast.MustParseRef("data.p")); v != nil || undefined {
		t.Fatalf("a prefix of a cached ref is not cached; got %v, %v", v, undefined)
	}
	c.Push() // `with` starts from an empty frame
	if v, undefined := c.Get(ref); v != nil || undefined {
		t.Fatalf("new frame sees %v, %v", v, undefined)
	}
	c.Put(ref, ast.IntNumberTerm(1))
	c.Pop()
	if v, undefined := c.Get(ref); v != nil || !undefined {
		t.Fatalf("after Pop got %v, %v; want the outer frame's undefined", v, undefined)
	}
	c.release()

	// A reused cache starts empty.
	c = getRuleCache()
	defer c.release()
	if v, undefined := c.Get(ref); v != nil || undefined {
		t.Fatalf("pooled cache still holds %v, %v", v, undefined)
	}
}

// The engine drives OPA's evaluator itself; over a policy that uses the
// features a policy author reaches for (functions called with many
// arguments, every, partial sets, else chains, with, comprehensions), it
// must answer what OPA's rego front end answers.
func TestDecideAgreesWithRego(t *testing.T) {
	const src = `package tokengate.gateway

has(s) if s in input.token.scopes

double(n) := n * 2

reasons contains "missing" if {
	some s in ["a:read", "b:read", "c:write"]
	not has(s)
}

reasons contains "big" if double(input.token.uses) > 4

reasons contains "every" if {
	every s in ["a:read", "b:read"] { has(s) }
	input.request.method == "DELETE"
}

reasons contains "with" if {
	has("x") with input.token.scopes as ["x"]
	not has("x")
	input.request.method == "PUT"
}

level := "high" if count(input.token.scopes) > 2
else := "mid" if count(input.token.scopes) > 1
else := "low"

scope := level

ttl_seconds := count({s | some s in input.token.scopes; has(s)})
`
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	// OPA's rego front end, asked for the same three rules.
	pq, err := rego.New(
		rego.Query("r = data.tokengate.gateway.reasons; s = data.tokengate.gateway.scope; t = data.tokengate.gateway.ttl_seconds"),
		rego.Module("gateway.rego", src), rego.StrictBuiltinErrors(true),
	).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		`{"token": {"scopes": ["a:read", "b:read", "c:write"], "uses": 1}, "request": {"method": "GET"}}`,
		`{"token": {"scopes": ["a:read"], "uses": 3}, "request": {"method": "GET"}}`,
		`{"token": {"scopes": ["a:read", "b:read"], "uses": 0}, "request": {"method": "DELETE"}}`,
		`{"token": {"scopes": [], "uses": 0}, "request": {"method": "PUT"}}`,
		`{"token": {"scopes": ["x"], "uses": 2}, "request": {"method": "PUT"}}`,
	} {
		input := ast.MustParseTerm(in).Value
		got, err := e.Decide(context.Background(), GatewayQuery, input)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(input))
		if err != nil {
			t.Fatal(err)
		}
		var want Decision
		for _, r := range rs[0].Bindings["r"].([]any) {
			want.Reasons = append(want.Reasons, r.(string))
		}
		slices.Sort(want.Reasons)
		want.Allow = len(want.Reasons) == 0
		want.Scope = rs[0].Bindings["s"].(string)
		ttl, _ := rs[0].Bindings["t"].(json.Number).Int64()
		want.TTL = time.Duration(ttl) * time.Second
		if got.Allow != want.Allow || !slices.Equal(got.Reasons, want.Reasons) || got.Scope != want.Scope || got.TTL != want.TTL {
			t.Errorf("input %s: engine %+v, rego %+v", in, got, want)
		}
	}
}
