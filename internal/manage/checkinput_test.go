package manage

import (
	"context"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// TestCheckInput: the input a dry run returns is the one the gateway
// builds from the stored record (so another policy can be tried on it),
// its decision is Check's, and a dead token comes without input.
func TestCheckInput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, tok, err := f.svc.Issue(ctx, local, lifecycle.Spec{Owner: "alice", Purpose: "dashboards", Scopes: []string{"billing:read"}, Services: []string{"billing"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	req := policy.Request{Method: "GET", Host: "api", Path: "/billing/x", RawPath: "/billing/x", RemoteIP: "10.0.0.1"}
	d, input, err := f.svc.CheckInput(ctx, bob, tok.ID, req, "billing")
	if err != nil || !d.Allow || input == nil {
		t.Fatalf("check: %v %+v %v", err, d, input)
	}
	stored, err := f.store.Get(ctx, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := policy.GatewayInput(policy.TokenTerm(stored), req, "billing", f.now); input.Compare(want) != 0 {
		t.Fatalf("input\n%v\nwant\n%v", input, want)
	}
	again, err := f.svc.Policy.Decide(ctx, policy.GatewayQuery, input)
	if err != nil || again.Allow != d.Allow || len(again.Reasons) != len(d.Reasons) {
		t.Fatalf("the input decides otherwise: %+v, check said %+v", again, d)
	}

	f.now = f.now.Add(2 * time.Hour)
	d, input, err = f.svc.CheckInput(ctx, bob, tok.ID, req, "billing")
	if err != nil || d.Allow || input != nil || len(d.Reasons) != 1 || d.Reasons[0] != "token_expired" {
		t.Fatalf("expired: %v %+v %v", err, d, input)
	}
	_, _, err = f.svc.CheckInput(ctx, bob, "tok_missing", req, "billing")
	wantKind(t, err, lifecycle.KindNotFound, "token_not_found")
}
