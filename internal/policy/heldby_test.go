package policy

import (
	"slices"
	"testing"
	"testing/fstest"
	"time"
)

// A gateway policy can tell tokens apart by who holds them, not only by
// the owner name typed into their request.
func TestGatewayPolicySeesTheHolder(t *testing.T) {
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(`package tokengate.gateway

reasons contains "holder_blocked" if input.token.held_by == "mallory"
`)}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := sampleToken(now)
	tok.Owner, tok.HeldBy = "mallory", "alice"
	if d := decide(t, e, tok, Request{Method: "GET", Path: "/billing/x"}, "billing", now); !d.Allow {
		t.Fatalf("owner named mallory, held by alice: %+v", d)
	}
	tok.Owner, tok.HeldBy = "alice", "mallory"
	if d := decide(t, e, tok, Request{Method: "GET", Path: "/billing/x"}, "billing", now); d.Allow || !slices.Equal(d.Reasons, []string{"holder_blocked"}) {
		t.Fatalf("held by mallory: %+v", d)
	}
}
