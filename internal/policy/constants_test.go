package policy

import (
	"context"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokengate/caddy-tokengate/policies"
)

// constantsPolicy mixes constant rules with rules of the same look that
// are not constant: a ground head behind a condition, a default, an else
// chain, a ref head and a rule defined twice.
const constantsPolicy = `package tokengate.gateway

table := {"GET": "read", "DELETE": "delete"}

names := ["a", "b"]

kind := object.get(table, input.request.method, "write")

when_get := "yes" if startswith(input.request.method, "G")

default fallback := "no"

fallback := "yes" if input.request.method == "PUT"

chain := "a" if input.request.method == "GET"
else := "b"

limits.max := 3

twice contains "x"

twice contains "y"

reasons contains kind

reasons contains "overridden" if {
	kind == "write" with data.tokengate.gateway.table as {}
}

reasons contains concat("-", ["when", when_get]) if true

reasons contains concat("-", ["fallback", fallback]) if true

reasons contains concat("-", ["chain", chain]) if true

reasons contains sprintf("max-%d", [limits.max]) if true

reasons contains concat("-", names) if count(twice) == 2
`

// Only the plainest constant rules are taken from the policy; the rest
// are evaluated by OPA as before.
func TestConstantRulesFound(t *testing.T) {
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(constantsPolicy)}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range e.current.Load().queries[GatewayQuery].constants {
		got = append(got, c.path.String())
	}
	slices.Sort(got)
	want := []string{"data.tokengate.gateway.names", "data.tokengate.gateway.table"}
	if !slices.Equal(got, want) {
		t.Errorf("constants %v, want %v", got, want)
	}

	shipped, err := NewEngine(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range shipped.current.Load().queries[GatewayQuery].constants {
		if c.path.HasPrefix(ast.MustParseRef("data.tokengate.admin")) {
			t.Errorf("the gateway query seeds %v, which it cannot reach", c.path)
		}
	}
}

// With the constants put in the memo, the engine decides as OPA's rego
// front end does, a `with` replacing a constant included.
func TestConstantRulesDecideAsRego(t *testing.T) {
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(constantsPolicy)}})
	if err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(
		rego.Query("r = data.tokengate.gateway.reasons"),
		rego.Module("gateway.rego", constantsPolicy), rego.StrictBuiltinErrors(true),
	).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET", "DELETE", "PUT", "POST"} {
		input := ast.MustParseTerm(`{"request": {"method": "` + method + `"}}`).Value
		got, err := e.Decide(context.Background(), GatewayQuery, input)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(input))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, r := range rs[0].Bindings["r"].([]any) {
			want = append(want, r.(string))
		}
		slices.Sort(want)
		if !slices.Equal(got.Reasons, want) {
			t.Errorf("%s: engine %v, rego %v", method, got.Reasons, want)
		}
	}
}
