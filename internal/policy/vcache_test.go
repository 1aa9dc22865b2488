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
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// OPA's evaluator builds function-call cache keys in one buffer it reuses,
// so the cache must keep its own copy of every ref it is given.
func TestRuleCacheKeepsItsOwnCopyOfRefs(t *testing.T) {
	c := newRuleCache()
	defer c.reset()
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
	c := newRuleCache()
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
	c.reset()

	// A reused cache starts empty.
	c = newRuleCache()
	defer c.reset()
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

reasons contains "path" if input.request.path == "/deny"

reasons contains "heavy" if heavy

heavy if input.token.uses > 2
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
	// Rules reading only input.token, input.route and the method are
	// carried from one call to the next (carried.go): the inputs come
	// twice, parsed afresh, and then again sharing the earlier token
	// terms with a request path a rule reads.
	if got := carriedPaths(e); !slices.Equal(got, []string{`"heavy"`, `"level"`, `"scope"`, `"ttl_seconds"`}) {
		t.Fatalf("carried %v", got)
	}
	var inputs []ast.Value
	texts := []string{
		`{"token": {"scopes": ["a:read", "b:read", "c:write"], "uses": 1}, "request": {"method": "GET"}}`,
		`{"token": {"scopes": ["a:read"], "uses": 3}, "request": {"method": "GET"}}`,
		`{"token": {"scopes": ["a:read", "b:read"], "uses": 0}, "request": {"method": "DELETE"}}`,
		`{"token": {"scopes": [], "uses": 0}, "request": {"method": "PUT"}}`,
		`{"token": {"scopes": ["x"], "uses": 2}, "request": {"method": "PUT"}}`,
	}
	for range 2 {
		for _, in := range texts {
			inputs = append(inputs, ast.MustParseTerm(in).Value)
		}
	}
	for i, in := range inputs[:len(texts)] {
		path := "/allow"
		if i%2 == 0 {
			path = "/deny"
		}
		obj := in.(ast.Object)
		inputs = append(inputs, ast.NewObject(
			[2]*ast.Term{ast.StringTerm("token"), obj.Get(ast.StringTerm("token"))},
			[2]*ast.Term{ast.StringTerm("request"), ast.ObjectTerm(
				[2]*ast.Term{ast.StringTerm("method"), obj.Get(ast.StringTerm("request")).Get(ast.StringTerm("method"))},
				[2]*ast.Term{ast.StringTerm("path"), ast.StringTerm(path)},
			)},
		))
	}
	for _, input := range inputs {
		in := input.String()
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

// Past indexFrom entries lookups go through the hash index; they must
// answer exactly what the list answers.
func TestRuleCacheLargeFrames(t *testing.T) {
	key := func(i int) ast.Ref {
		return ast.Ref{ast.DefaultRootDocument, ast.StringTerm("p"), ast.StringTerm("f"), ast.IntNumberTerm(i)}
	}
	for round := range 2 { // the second round reuses the pooled cache
		c := newRuleCache()
		const n = 5000
		for i := range n {
			var v *ast.Term
			if i%3 != 0 {
				v = ast.IntNumberTerm(i)
			}
			c.Put(key(i), v)
		}
		c.Put(key(7), ast.StringTerm("updated"))
		for i := range n {
			v, undefined := c.Get(key(i))
			switch {
			case i == 7:
				if v == nil || !v.Equal(ast.StringTerm("updated")) {
					t.Fatalf("round %d: f(7) = %v after an update", round, v)
				}
			case i%3 == 0:
				if v != nil || !undefined {
					t.Fatalf("round %d: f(%d) = %v, %v; want undefined", round, i, v, undefined)
				}
			default:
				if v == nil || !v.Equal(ast.IntNumberTerm(i)) {
					t.Fatalf("round %d: f(%d) = %v", round, i, v)
				}
			}
		}
		if v, undefined := c.Get(key(n)); v != nil || undefined {
			t.Fatalf("round %d: f(%d) was never put, got %v, %v", round, n, v, undefined)
		}
		if v, undefined := c.Get(key(1)[:3]); v != nil || undefined {
			t.Fatalf("round %d: a prefix is not cached, got %v, %v", round, v, undefined)
		}
		if len(c.Keys()) != n {
			t.Fatalf("round %d: %d keys, want %d", round, len(c.Keys()), n)
		}
		c.Push()
		if v, _ := c.Get(key(1)); v != nil {
			t.Fatalf("round %d: a new frame sees %v", round, v)
		}
		c.Pop()
		c.reset()
	}
}

// manyCalls calls a function 20,000 times with different arguments in one
// evaluation: 20,000 entries in the rule cache.
const manyCalls = `package tokengate.gateway

f(i) := i * 2

reasons contains "odd" if {
	some i in numbers.range(1, 20000)
	f(i) == -1
}
`

// OPA's own cache and the engine's, with 20,000 entries: Put each, then
// Get each, per operation.
func BenchmarkRuleCache(b *testing.B) {
	const n = 20000
	keys := make([]ast.Ref, n)
	for i := range keys {
		keys[i] = ast.Ref{ast.DefaultRootDocument, ast.StringTerm("tokengate"), ast.StringTerm("gateway"), ast.StringTerm("f"), ast.IntNumberTerm(i)}
	}
	value := ast.BooleanTerm(true)
	run := func(b *testing.B, cache func() (topdown.VirtualCache, func())) {
		b.ReportAllocs()
		for b.Loop() {
			c, done := cache()
			for _, k := range keys {
				c.Put(k, value)
			}
			for _, k := range keys {
				if v, _ := c.Get(k); v == nil {
					b.Fatal("miss")
				}
			}
			done()
		}
	}
	b.Run("entries=20000/ruleCache", func(b *testing.B) {
		run(b, func() (topdown.VirtualCache, func()) { c := newRuleCache(); return c, c.reset })
	})
	b.Run("entries=20000/topdown.NewVirtualCache", func(b *testing.B) {
		run(b, func() (topdown.VirtualCache, func()) { return topdown.NewVirtualCache(), func() {} })
	})
}

// The same comparison through a whole evaluation: one query, a function
// called 20,000 times, with each cache.
func BenchmarkRuleCacheEvaluation(b *testing.B) {
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(manyCalls)}})
	if err != nil {
		b.Fatal(err)
	}
	c := e.current.Load()
	q := c.queries[GatewayQuery]
	run := func(b *testing.B, cache func() (topdown.VirtualCache, func())) {
		ctx := context.Background()
		for b.Loop() {
			vc, done := cache()
			txn := storage.NewTransactionOrDie(ctx, c.data)
			rs, err := topdown.NewQuery(q.body).WithCompiler(c.compiler).WithStore(c.data).WithTransaction(txn).
				WithInput(ast.NewTerm(ast.NewObject())).WithVirtualCache(vc).Run(ctx)
			c.data.Abort(ctx, txn)
			done()
			if err != nil || len(rs) != 1 {
				b.Fatal(rs, err)
			}
		}
	}
	b.Run("calls=20000/ruleCache", func(b *testing.B) {
		run(b, func() (topdown.VirtualCache, func()) { c := newRuleCache(); return c, c.reset })
	})
	b.Run("calls=20000/topdown.NewVirtualCache", func(b *testing.B) {
		run(b, func() (topdown.VirtualCache, func()) { return topdown.NewVirtualCache(), func() {} })
	})
}

// The rule memo has no quadratic cliff: at 20,000 entries every lookup
// goes through the frame's index and walks a short chain of entries that
// share a hash, instead of comparing refs one by one (the list it replaced
// was thousands of times slower; BenchmarkRuleCache shows how near OPA's
// own cache it stays). Counted, not timed, so a busy machine cannot fail
// it and a slow lookup cannot pass it.
func TestRuleCacheHasNoCliff(t *testing.T) {
	c := newRuleCache()
	defer c.reset()
	const n = 20000
	keys := make([]ast.Ref, n)
	for i := range keys {
		keys[i] = ast.Ref{ast.DefaultRootDocument, ast.StringTerm("p"), ast.StringTerm("f"), ast.IntNumberTerm(i)}
		c.Put(keys[i], ast.BooleanTerm(true))
	}
	frame := c.frames[len(c.frames)-1]
	if frame.index == nil {
		t.Fatalf("a frame of %d entries has no index: every lookup compares refs one by one", len(frame.entries))
	}
	longest := 0
	for _, k := range keys {
		if v, undefined := c.Get(k); v == nil || undefined {
			t.Fatalf("%v: not found", k)
		}
		steps := 0
		for at := frame.index[k.Hash()]; at != 0; at = frame.entries[at-1].prev {
			steps++
		}
		longest = max(longest, steps)
	}
	if longest > 8 {
		t.Fatalf("20,000 entries: a lookup walks up to %d entries sharing one hash", longest)
	}
}

// newRuleCache returns an empty cache with one frame open, as Decide's
// pooled evaluations hold it.
func newRuleCache() *ruleCache {
	c := &ruleCache{}
	c.Push()
	return c
}
