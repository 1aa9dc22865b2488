package policy

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// TestEvaluatorsAgree runs the same gateway inputs through the fast
// evaluator and the plain prepared-query one, on the shipped policies:
// tokens of several scopes, services, CIDRs and limits, every method, on
// several routes, paths and addresses, each token twice (the second time
// the fast evaluator uses carried values).
func TestEvaluatorsAgree(t *testing.T) {
	fast, err := NewEngine(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := NewEngine(policies.FS, WithPlainEvaluator())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	var tokens []*store.Token
	for _, scopes := range [][]string{{"billing:read"}, {"billing:write"}, {"billing:read", "search:admin"}, {"tokens:approve"}, {"billing:*"}} {
		for _, cidrs := range [][]string{nil, {"10.0.0.0/8"}, {"2001:db8::/32"}} {
			for _, maxUses := range []int64{0, 3} {
				tokens = append(tokens, &store.Token{ID: "tok_x", Owner: "alice", Purpose: "agreement",
					Scopes: scopes, Services: []string{"billing", "tokengate-admin"}, CIDRs: cidrs, MaxUses: maxUses, Uses: 1,
					NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)})
			}
		}
	}
	n := 0
	for _, tok := range tokens {
		term := TokenTerm(tok)
		for round := 0; round < 2; round++ {
			for _, service := range []string{"billing", "search", "tokengate-admin"} {
				for _, method := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
					for _, path := range []string{"/", "/billing/invoices", "/v1/tokens", "/private/x"} {
						for _, ip := range []string{"10.1.2.3", "192.0.2.7", "2001:db8::1"} {
							input := GatewayInput(term, Request{Method: method, Path: path, RawPath: path, RemoteIP: ip, Host: "api.example.com"}, service, now)
							compare(t, fast, plain, GatewayQuery, input)
							n++
						}
					}
				}
			}
		}
	}
	for _, action := range []string{"request", "approve", "read", "issue", "revoke"} {
		compare(t, fast, plain, AdminQuery, ast.NewObject([2]*ast.Term{ast.StringTerm("action"), ast.StringTerm(action)}))
	}
	t.Logf("%d gateway inputs agree", n)
}

func compare(t *testing.T, fast, plain *Engine, query string, input ast.Value) {
	t.Helper()
	a, errA := fast.Decide(context.Background(), query, input)
	b, errB := plain.Decide(context.Background(), query, input)
	if (errA == nil) != (errB == nil) {
		t.Fatalf("%s %v: fast %v, plain %v", query, input, errA, errB)
	}
	if a.Allow != b.Allow || a.AutoApprove != b.AutoApprove || a.Scope != b.Scope || a.TTL != b.TTL || !slices.Equal(a.Reasons, b.Reasons) {
		t.Fatalf("%s %v:\nfast  %+v\nplain %+v", query, input, a, b)
	}
}
