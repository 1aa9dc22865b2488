package policy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// BenchmarkDecide evaluates the default gateway policy once per iteration,
// building input the way the gateway does: the token term once per token
// version, the rest of input per call.
func BenchmarkDecide(b *testing.B) {
	e, err := NewEngine(policies.FS)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tok := &store.Token{
		ID: "tok_bench", Owner: "team-1", Purpose: "benchmark",
		Scopes: []string{"billing:read", "billing:write"}, Services: []string{"billing"},
		NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour),
	}
	withCIDRs := tok.Clone()
	withCIDRs.CIDRs = []string{"10.0.0.0/8", "192.168.0.0/16", "127.0.0.0/8"}
	req := Request{Method: "GET", Host: "api.example.com", Path: "/billing/invoices", RemoteIP: "127.0.0.1"}

	for _, c := range []struct {
		name string
		tok  *store.Token
		req  Request
	}{
		{"allow", tok, req},
		{"allow_cidrs", withCIDRs, req},
		{"deny_scope", tok, Request{Method: "GET", Host: "api.example.com", Path: "/search/x", RemoteIP: "127.0.0.1"}},
	} {
		term := TokenTerm(c.tok)
		service := "billing"
		if c.name == "deny_scope" {
			service = "search"
		}
		b.Run(c.name+"/Decide", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			for b.Loop() {
				d, err := e.Decide(ctx, GatewayQuery, GatewayInput(term, c.req, service, now))
				if err != nil {
					b.Fatal(err)
				}
				if d.Allow != (c.name != "deny_scope") {
					b.Fatalf("unexpected decision %+v", d)
				}
			}
		})
	}
}

// BenchmarkDecideNewToken is BenchmarkDecide/allow with a token no earlier
// call used, the case in which no rule value is carried over (carried.go):
// the first call of each token version, and every call when tokens
// change faster than the kept values' bound.
func BenchmarkDecideNewToken(b *testing.B) {
	e, err := NewEngine(policies.FS)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	// Twice maxCarriedEntries: a token's values are dropped before it
	// comes round again.
	terms := make([]*ast.Term, 2*maxCarriedEntries)
	for i := range terms {
		terms[i] = TokenTerm(&store.Token{
			ID: fmt.Sprintf("tok_%d", i), Owner: "team-1", Purpose: "benchmark",
			Scopes: []string{"billing:read", "billing:write"}, Services: []string{"billing"},
			NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour),
		})
	}
	req := Request{Method: "GET", Host: "api.example.com", Path: "/billing/invoices", RemoteIP: "127.0.0.1"}
	ctx := context.Background()
	b.ReportAllocs()
	defer benchdata.MeasureCPU(b)()
	i := 0
	for b.Loop() {
		d, err := e.Decide(ctx, GatewayQuery, GatewayInput(terms[i%len(terms)], req, "billing", now))
		if err != nil || !d.Allow {
			b.Fatal(d, err)
		}
		i++
	}
}

// BenchmarkGatewayInput measures building input alone.
func BenchmarkGatewayInput(b *testing.B) {
	term := TokenTerm(&store.Token{ID: "tok_bench", Scopes: []string{"billing:read"}, Services: []string{"billing"}})
	req := Request{Method: "GET", Host: "api.example.com", Path: "/billing/invoices", RemoteIP: "127.0.0.1"}
	now := time.Now()
	b.Run("GatewayInput", func(b *testing.B) {
		b.ReportAllocs()
		defer benchdata.MeasureCPU(b)()
		for b.Loop() {
			_ = GatewayInput(term, req, "billing", now)
		}
	})
}
