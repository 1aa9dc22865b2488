package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/tokengate/caddy-tokengate/api"
)

// TestAPIClient drives both endpoints through the public client: the
// two-person flow on the management API, the local operator's routes on
// Caddy's admin endpoint, refusals as typed errors with the API's reason,
// and the policy input check returns for trying another policy.
func TestAPIClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.bootstrap()
	ctx := context.Background()
	alice, bob := api.NewRemote(e.mgmtURL, e.requester), api.NewRemote(e.mgmtURL, e.approver)
	local := &api.Client{BaseURL: e.adminURL + "/tokengate"}

	asked, err := alice.Request(ctx, api.TokenSpec{Owner: "etl", Purpose: "nightly load", Scopes: []string{"billing:write"}, Services: []string{"billing"}, TTL: "2h"})
	if err != nil || asked.Request.Status != "pending" || asked.Secret != "" {
		t.Fatalf("request: %+v %v", asked, err)
	}
	if pending, err := bob.ListRequests(ctx, "pending"); err != nil || len(pending) != 1 || pending[0].ID != asked.Request.ID {
		t.Fatalf("pending: %+v %v", pending, err)
	}
	if out, err := bob.Approve(ctx, asked.Request.ID, "ticket 7"); err != nil || out.Request.Status != "approved" || out.Secret != "" {
		t.Fatalf("approve: %+v %v", out, err)
	}
	var refusal *api.Error
	if _, err := bob.Claim(ctx, asked.Request.ID); api.Reason(err) != "not_requester" || !errors.As(err, &refusal) || refusal.Status != http.StatusForbidden {
		t.Fatalf("the approver claiming: %v", err)
	}
	claimed, err := alice.Claim(ctx, asked.Request.ID)
	if err != nil || claimed.Secret == "" || claimed.Token == nil {
		t.Fatalf("claim: %v", err)
	}
	remember(claimed.Secret)
	if _, err := alice.Claim(ctx, asked.Request.ID); !errors.As(err, &refusal) || refusal.Status != http.StatusGone {
		t.Fatalf("second claim: %v", err)
	}

	if view, err := local.GetToken(ctx, claimed.Token.ID); err != nil || view.Owner != "etl" || view.ApprovedBy != "bob" {
		t.Fatalf("local show: %+v %v", view, err)
	}
	res, err := local.Check(ctx, api.CheckRequest{TokenID: claimed.Token.ID, Service: "billing", Method: "POST", Path: "/billing/x", WithInput: true})
	if err != nil || !res.Allow {
		t.Fatalf("check: %+v %v", res, err)
	}
	var input struct {
		Token   map[string]any `json:"token"`
		Request map[string]any `json:"request"`
		Route   map[string]any `json:"route"`
	}
	if err := json.Unmarshal(res.Input, &input); err != nil || input.Token["owner"] != "etl" || input.Token["id"] != claimed.Token.ID ||
		input.Request["path"] != "/billing/x" || input.Route["service"] != "billing" {
		t.Fatalf("check input: %s (%v)", res.Input, err)
	}
	if res, err := local.Check(ctx, api.CheckRequest{TokenID: claimed.Token.ID, Service: "billing"}); err != nil || res.Input != nil {
		t.Fatalf("input returned unasked: %s %v", res.Input, err)
	}
	if _, err := local.Revoke(ctx, claimed.Token.ID, "done"); err != nil {
		t.Fatal(err)
	}
	// A dead token comes without input: no policy could change its answer.
	if res, err := local.Check(ctx, api.CheckRequest{TokenID: claimed.Token.ID, Service: "billing", WithInput: true}); err != nil || res.Allow || res.Input != nil || len(res.Reasons) != 1 || res.Reasons[0] != "token_revoked" {
		t.Fatalf("check of a revoked token: %+v %v", res, err)
	}
	if _, err := local.GetToken(ctx, "tok_doesnotexist"); !errors.As(err, &refusal) || refusal.Status != http.StatusNotFound || refusal.Reason == "" {
		t.Fatalf("unknown token: %v", err)
	}
}
