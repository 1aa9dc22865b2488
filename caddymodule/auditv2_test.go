package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokengate/caddy-tokengate/internal/audit"
)

// TestManagementRefusalCallLineAgrees: a management call the gateway let
// through but the management API refused is a deny in the call line too,
// with the management reason, and its action line is joined to it by
// Caddy's request UUID.
func TestManagementRefusalCallLineAgrees(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.bootstrap()
	_, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil))
	req := decode[RequestOutcome](t, body).Request
	aliceApprover, _ := e.approvedToken(map[string]any{
		"owner": "alice", "purpose": "approve for the finance team", "scopes": []string{"tokens:approve"},
		"services": []string{"tokengate-admin"}, "ttl": "1h"})
	status, body := e.mgmt(aliceApprover, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{})
	wantRefusal(t, "self-approval", status, body, http.StatusForbidden, "self_approval")

	call := e.auditFor("/v1/requests/" + req.ID + "/approve")
	if call["decision"] != "deny" || call["status"] != 403.0 || len(call["reasons"].([]any)) != 1 || call["reasons"].([]any)[0] != "self_approval" {
		t.Errorf("call line of a refused management action: %v", call)
	}
	var action map[string]any
	for _, l := range e.auditLines() {
		if l["msg"] != "decision" && l["outcome"] == "refused" && l["token_request_id"] == req.ID {
			action = l
		}
	}
	if action == nil || action["reasons"].([]any)[0] != "self_approval" {
		t.Fatalf("no refused action line for %s: %v", req.ID, action)
	}
	if id, _ := call["request_id"].(string); id == "" || action["request_id"] != id {
		t.Errorf("request_id: call line %v, action line %v; want one Caddy request UUID", call["request_id"], action["request_id"])
	}
}

// TestActionLinesCarryTheToken: issue and claim lines name the token's
// owner, holder, scopes, services and lifetime as fields.
func TestActionLinesCarryTheToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	_, id := e.approvedToken(writeRequest(nil))
	var claimed map[string]any
	for _, l := range e.auditLines() {
		if l["msg"] == "token.claimed" && l["token_id"] == id {
			claimed = l
		}
	}
	if claimed == nil || claimed["owner"] != "billing-exporter" || claimed["held_by"] != "alice" || claimed["ttl"] != 86400.0 ||
		len(claimed["scopes"].([]any)) != 1 || claimed["services"].([]any)[0] != "billing" || claimed["token_request_id"] == nil {
		t.Errorf("token.claimed line: %v", claimed)
	}
}

// TestSchemaRefusesLooseLines: the schema is closed and typed: a line
// with an added field, a client_ip that is no address or a ts that is no
// time is invalid, while the real line it was made from is valid.
func TestSchemaRefusesLooseLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret, _ := e.issue(billingReader(nil))
	e.send(e.gateURL, secret, "GET", "/billing/schema-1", nil)
	real := e.auditFor("/billing/schema-1")
	if !matchesSchema(t, real) {
		t.Fatalf("a real line does not match: %v", real)
	}
	for name, change := range map[string]func(map[string]any){
		"secret field":        func(l map[string]any) { l["secret"] = "tg_x" },
		"client_ip not an ip": func(l map[string]any) { l["client_ip"] = "not-an-ip" },
		"ts yesterday":        func(l map[string]any) { l["ts"] = "yesterday" },
		"schema 1":            func(l map[string]any) { l["schema"] = 1 },
	} {
		b, _ := json.Marshal(real)
		var l map[string]any
		_ = json.Unmarshal(b, &l)
		change(l)
		if matchesSchema(t, l) {
			t.Errorf("%s: the schema accepts %v", name, l)
		}
	}
}

func matchesSchema(t *testing.T, line map[string]any) bool {
	t.Helper()
	var schema any
	if err := json.Unmarshal(audit.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(rego.Query("x := json.match_schema(input.line, input.schema)"),
		rego.Input(map[string]any{"line": line, "schema": schema})).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("validating: %v", err)
	}
	ok, _ := rs[0].Bindings["x"].([]any)[0].(bool)
	return ok
}

// TestIssueRotateRevokeLinesCarryTheToken: token.issued names owner,
// scopes and ttl; token.rotated the successor as a field; token.revoked
// the token it revoked.
func TestIssueRotateRevokeLinesCarryTheToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	_, id := e.issue(billingReader(nil))
	next := e.rotate(id, "1m")
	lines := map[string]map[string]any{}
	for _, l := range e.auditLines() {
		if l["token_id"] == id {
			lines[l["msg"].(string)] = l
		}
	}
	issued, rotated := lines["token.issued"], lines["token.rotated"]
	if issued == nil || issued["owner"] != "alice" || issued["ttl"] != 3600.0 || issued["scopes"].([]any)[0] != "billing:read" {
		t.Errorf("token.issued line: %v", issued)
	}
	if rotated == nil || rotated["successor_id"] != next.Token.ID || rotated["owner"] != "alice" {
		t.Errorf("token.rotated line: %v (successor %s)", rotated, next.Token.ID)
	}
}
