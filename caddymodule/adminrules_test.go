package caddymodule

import (
	"net/http"
	"testing"
)

// The shipped admin rules (policies/admin_roles.rego, admin_rules.rego)
// through real Caddy, with a directory in the policy folder's data:
// tickets for production writes, external integrations, how many services
// a token may list, developers and production, approvers.
func TestShippedAdminRulesWithADirectory(t *testing.T) {
	t.Parallel()
	// billing says step_up false: this test approves through the API,
	// which cannot take a security key (the console tests cover step-up).
	dir := copyPolicies(t, map[string]string{"tokengate/directory/data.json": `{
		"groups": {"approvers": ["BOB"], "developers": ["carol"]},
		"services": {
			"billing": {"environment": "production", "integrations": ["acme-crm"], "step_up": false},
			"search": {"environment": "staging", "integrations": ["acme-crm"]},
			"ledger": {}
		},
		"integrations": {"acme-crm": {}}
	}`})
	e := newEnv(t, envOptions{policyDir: dir})
	e.bootstrap()
	ask := func(spec map[string]any) (int, RequestOutcome, []byte) {
		t.Helper()
		status, body := e.mgmt(e.requester, "POST", "/v1/requests", spec)
		var out RequestOutcome
		if status < 300 {
			out = decode[RequestOutcome](t, body)
		}
		return status, out, body
	}
	spec := func(owner string, scopes, services []string, extra map[string]any) map[string]any {
		s := map[string]any{"owner": owner, "purpose": "sync invoices", "scopes": scopes, "services": services, "ttl": "1h"}
		for k, v := range extra {
			s[k] = v
		}
		return s
	}

	// A production write names a ticket, and the approver sees it.
	status, _, body := ask(spec("billing-exporter", []string{"billing:write"}, []string{"billing"}, nil))
	wantRefusal(t, "production write without a ticket", status, body, http.StatusForbidden, "ticket_required")
	status, _, body = ask(spec("billing-exporter", []string{"billing:write"}, []string{"billing"}, map[string]any{"ticket": "  "}))
	wantRefusal(t, "production write with a blank ticket", status, body, http.StatusForbidden, "ticket_required")
	status, asked, body := ask(spec("billing-exporter", []string{"billing:write"}, []string{"billing"}, map[string]any{"ticket": "CHG-1042"}))
	if status != http.StatusAccepted {
		t.Fatalf("production write with a ticket: %d %s", status, body)
	}
	status, body = e.mgmt(e.approver, "GET", "/v1/requests/"+asked.Request.ID, nil)
	if v := decode[RequestView](t, body); status != http.StatusOK || v.Ticket != "CHG-1042" {
		t.Fatalf("the approver does not see the ticket: %d %s", status, body)
	}
	// bob is in approvers (listed as BOB: principals compare
	// case-insensitively).
	if status, body := e.mgmt(e.approver, "POST", "/v1/requests/"+asked.Request.ID+"/approve", map[string]string{"reason": "CHG-1042 approved"}); status != http.StatusOK {
		t.Fatalf("approver approves: %d %s", status, body)
	}
	status, body = e.mgmt(e.requester, "POST", "/v1/requests/"+asked.Request.ID+"/claim", nil)
	claimed := decode[RequestOutcome](t, body)
	if status != http.StatusCreated || claimed.Secret == "" {
		t.Fatalf("claim: %d %s", status, body)
	}
	remember(claimed.Secret)
	if r := call(t, "POST", e.gateURL+"/billing/invoices", bearer(claimed.Secret)...); r.status != http.StatusOK {
		t.Fatalf("the approved production writer writes: %d %s", r.status, r.body)
	}

	// An external integration gets one service, one that lists it.
	status, _, body = ask(spec("acme-crm", []string{"billing:read", "search:read"}, []string{"billing", "search"}, nil))
	wantRefusal(t, "integration on two services", status, body, http.StatusForbidden, "integration_one_service")
	status, _, body = ask(spec("acme-crm", []string{"ledger:read"}, []string{"ledger"}, nil))
	wantRefusal(t, "integration on a service that does not list it", status, body, http.StatusForbidden, "integration_service_not_allowed")
	if status, _, body := ask(spec("ACME-CRM", []string{"search:read"}, []string{"search"}, nil)); status != http.StatusAccepted {
		t.Fatalf("integration on a service that lists it: %d %s", status, body)
	}

	// No token reaches every service, nor more than three.
	status, _, body = ask(spec("report-job", []string{"billing:read", "search:read", "ledger:read"}, []string{"billing", "search", "ledger"}, nil))
	wantRefusal(t, "reads on every listed service", status, body, http.StatusForbidden, "every_service")
	status, _, body = ask(spec("report-job", []string{"billing:read"}, []string{"billing", "search", "ledger", "docs"}, nil))
	wantRefusal(t, "four services", status, body, http.StatusForbidden, "too_many_services")
	if status, _, body := ask(spec("report-job", []string{"billing:read", "search:read"}, []string{"billing", "search"}, nil)); status != http.StatusAccepted {
		t.Fatalf("reads on two of three services: %d %s", status, body)
	}

	// The same node with another directory: alice is a developer, and
	// approvers no longer include bob, whose tokens:approve scope alone
	// does not approve a write while an approvers group is defined.
	other := copyPolicies(t, map[string]string{"tokengate/directory/data.json": `{
		"groups": {"approvers": ["carol"], "developers": ["Alice"]},
		"services": {"billing": {"environment": "production"}, "search": {"environment": "staging"}}
	}`})
	newEnvReusing(e, envOptions{policyDir: other})
	status, _, body = ask(spec("billing-exporter", []string{"billing:write"}, []string{"billing"}, map[string]any{"ticket": "CHG-1043"}))
	wantRefusal(t, "developer asks for a production write", status, body, http.StatusForbidden, "developer_production_write")
	status, _, body = ask(spec("billing-exporter", []string{"billing:delete"}, []string{"billing"}, map[string]any{"ticket": "CHG-1043"}))
	wantRefusal(t, "developer asks for a production delete", status, body, http.StatusForbidden, "developer_production_write")
	status, asked, body = ask(spec("search-indexer", []string{"search:write"}, []string{"search"}, nil))
	if status != http.StatusAccepted {
		t.Fatalf("developer asks for a staging write: %d %s", status, body)
	}
	status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+asked.Request.ID+"/approve", map[string]string{"reason": "looks fine"})
	wantRefusal(t, "approval by a scope holder outside approvers", status, body, http.StatusForbidden, "approver_required")
	// A read-only, non-production request needs no approver from the group.
	status, asked, body = ask(spec("search-reader", []string{"search:read"}, []string{"search"}, nil))
	if status != http.StatusAccepted {
		t.Fatalf("read request: %d %s", status, body)
	}
	if status, body := e.mgmt(e.approver, "POST", "/v1/requests/"+asked.Request.ID+"/approve", map[string]string{"reason": "read only"}); status != http.StatusOK {
		t.Fatalf("scope holder approves a staging read: %d %s", status, body)
	}
}
