package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/store"
)

// input.route is shared per service, but services named by API callers
// (`check`) must not grow the shared map without bound.
func TestRouteTermsAreSharedAndBounded(t *testing.T) {
	//lint:ignore SA4000 two calls must give the same pointer
	if routeTerm("billing") != routeTerm("billing") {
		t.Fatal("the same service got two route terms")
	}
	for i := range 2 * maxRouteTerms {
		service := fmt.Sprintf("svc-%d", i)
		got := routeTerm(service)
		if !got.Equal(ast.ObjectTerm([2]*ast.Term{ast.StringTerm("service"), ast.StringTerm(service)})) {
			t.Fatalf("route term for %s is %v", service, got)
		}
	}
	if n := routeTermCount.Load(); n > maxRouteTerms {
		t.Fatalf("%d shared route terms, bound is %d", n, maxRouteTerms)
	}
	n := 0
	routeTerms.Range(func(any, any) bool { n++; return true })
	if n > maxRouteTerms {
		t.Fatalf("map holds %d route terms, bound is %d", n, maxRouteTerms)
	}
}

// GatewayInput shares terms between fields (raw_path and path when they
// are the same); the document must still be exactly the one a JSON
// round trip of the same fields gives.
func TestGatewayInputIsTheDocument(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	tok := TokenTerm(&store.Token{ID: "tok_1", Scopes: []string{"billing:read"}, Services: []string{"billing"}})
	for _, rawPath := range []string{"/billing/x", "/billing//x", ""} {
		req := Request{Method: "PATCH", Host: "api.example.com", Path: "/billing/x", RawPath: rawPath, RemoteIP: "10.0.0.1", Headers: map[string]string{"x-team": "a"}}
		got := GatewayInput(tok, req, "billing", now)
		want := ast.MustParseTerm(fmt.Sprintf(`{
			"request": {"method": "PATCH", "host": "api.example.com", "path": "/billing/x", "raw_path": %q, "remote_ip": "10.0.0.1", "headers": {"x-team": "a"}},
			"route": {"service": "billing"},
			"now": %d
		}`, rawPath, now.UnixNano())).Value.(ast.Object)
		want.Insert(ast.StringTerm("token"), tok)
		if ast.Compare(got, want) != 0 {
			t.Errorf("raw path %q: input\n%v\nwant\n%v", rawPath, got, want)
		}
	}
}
