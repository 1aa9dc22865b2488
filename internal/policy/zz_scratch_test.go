package policy

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store"
)

func BenchmarkScratchTrivial(b *testing.B) {
	e, err := NewEngine(fstest.MapFS{"g.rego": {Data: []byte("package tokengate.gateway\ndecision := {\"allow\": true, \"reasons\": []}\n")}})
	if err != nil {
		b.Fatal(err)
	}
	term := TokenTerm(&store.Token{ID: "tok_bench", Scopes: []string{"billing:read"}, Services: []string{"billing"}})
	req := Request{Method: "GET", Host: "api.example.com", Path: "/billing/invoices", RemoteIP: "127.0.0.1"}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(context.Background(), GatewayQuery, GatewayInput(term, req, "billing", now))
	}
}
