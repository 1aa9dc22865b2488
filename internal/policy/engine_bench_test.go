package policy

import (
	"context"
	"testing"
	"time"

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
