package policy

import (
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// input.route is shared per service, but services named by API callers
// (`check`) must not grow the shared map without bound.
func TestRouteTermsAreSharedAndBounded(t *testing.T) {
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
