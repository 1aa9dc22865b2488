package policy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The engine sets up OPA's evaluator itself, so the built-ins that need
// something from their environment (the clock, the runtime, randomness,
// an HTTP client with its cache, print) must still work, not panic or
// quietly come out undefined.
func TestBuiltinsThatNeedTheirEnvironment(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok": true}`))
	}))
	defer srv.Close()
	const src = `package tokengate.gateway

reasons contains "environment_missing" if not environment

environment if {
	print("evaluating")
	is_object(opa.runtime())
	time.now_ns() > 1700000000000000000
	rand.intn("seed", 10) < 10
	http.send({"method": "GET", "url": data.upstream.url, "cache": true}).body.ok == true
}
`
	e, err := NewEngine(fstest.MapFS{
		"gateway.rego":       {Data: []byte(src)},
		"upstream/data.json": {Data: []byte(`{"url": "` + srv.URL + `"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	input := ast.NewObject()
	for range 2 { // the second time http.send answers from its cache
		d, err := e.Decide(context.Background(), GatewayQuery, input)
		if err != nil || !d.Allow {
			t.Fatalf("got %+v, %v; want allow", d, err)
		}
	}
}
