package tokengate.admin_rules_test

import data.tokengate.admin

config := {"max_ttl_seconds": 2592000}

person(name, groups) := {"principal": name, "kind": "person", "groups": groups, "token_id": "", "scopes": [], "local": false, "issuer": "https://login.example.com/", "claims": {}}

approver := {"principal": "alice", "kind": "person", "groups": [], "token_id": "", "scopes": [], "local": false}

github_claims := {"repository": "acme/billing", "ref": "refs/heads/main", "environment": "production", "workflow": "deploy", "sub": "repo:acme/billing:environment:production"}

workload(claims) := {"principal": claims.sub, "kind": "workload", "token_id": "", "scopes": [], "local": false, "issuer": "github", "claims": claims}

deployer := workload(github_claims)

directory := {
	"groups": {"approvers": ["alice"], "developers": ["Dave", "devbot"]},
	"services": {
		"billing": {"environment": "production", "integrations": ["acme-crm"]},
		"search": {"environment": "staging", "integrations": ["acme-crm"]},
		"ledger": {"environment": "production"},
		"docs": {},
	},
	"integrations": {"acme-crm": {"contact": "crm-team@example.com"}},
	"workloads": [
		{
			"name": "billing-deploy", "issuer": "github",
			"claims": {"repository": "acme/billing", "ref": "refs/heads/main", "environment": "production"},
			"services": ["billing"], "scopes": ["billing:write"], "max_ttl_seconds": 600,
		},
		{
			"name": "no claims: matches nothing", "issuer": "github", "claims": {},
			"services": ["docs"], "scopes": ["docs:read"],
		},
	],
}

request(patch) := object.union(
	{
		"id": "req_1", "owner": "report-job", "purpose": "sync",
		"scopes": ["search:read"], "services": ["search"], "cidrs": ["10.0.0.0/8"],
		"ttl_seconds": 3600, "max_uses": 0, "requested_by": "carol", "held_by": "carol",
	},
	patch,
)

exchange_request(patch) := object.union(
	request({"owner": github_claims.sub, "requested_by": github_claims.sub, "held_by": github_claims.sub, "cidrs": []}),
	object.union({"scopes": ["billing:write"], "services": ["billing"], "ttl_seconds": 600}, patch),
)

decide(action, actor, r) := d if {
	d := admin.decision with input as {"action": action, "actor": actor, "request": r, "config": config}
		with data.tokengate.directory as directory
}

decide_with(action, actor, r, dir) := d if {
	d := admin.decision with input as {"action": action, "actor": actor, "request": r, "config": config}
		with data.tokengate.directory as dir
}

refused(d, reason) if {
	d.allow == false
	reason in d.reasons
}

not_refused_for(d, reason) if not reason in d.reasons

carol := person("carol", [])

# Developers and production.

test_developer_gets_no_production_write if {
	dave := person("dave", [])
	prod_write := request({"scopes": ["billing:write"], "services": ["billing"], "requested_by": "dave", "held_by": "dave", "ticket": "CHG-1"})
	refused(decide("request", dave, prod_write), "developer_production_write")
	refused(decide("request", dave, object.union(prod_write, {"scopes": ["billing:delete"]})), "developer_production_write")
	refused(decide("approve", approver, prod_write), "developer_production_write")
}

test_idp_developers_group_counts if {
	frank := person("frank", ["Developers"])
	r := request({"scopes": ["ledger:write"], "services": ["ledger"], "requested_by": "frank", "held_by": "frank", "ticket": "CHG-1"})
	refused(decide("request", frank, r), "developer_production_write")
}

test_developer_as_owner_counts if {
	r := request({"owner": "dave", "scopes": ["billing:write"], "services": ["billing"], "ticket": "CHG-1"})
	refused(decide("request", carol, r), "developer_production_write")
}

test_developer_reads_production_and_writes_staging if {
	dave := person("dave", [])
	not_refused_for(decide("request", dave, request({"scopes": ["billing:read"], "services": ["billing"], "requested_by": "dave", "held_by": "dave"})), "developer_production_write")
	decide("request", dave, request({"scopes": ["search:write"], "services": ["search"], "requested_by": "dave", "held_by": "dave"})).allow
}

test_non_developer_may_ask_for_production_write if {
	d := decide("request", carol, request({"scopes": ["billing:write"], "services": ["billing"], "ticket": "CHG-7"}))
	d.allow
	not d.auto_approve
}

# The rule follows the person through every credential and step.

frank_write := request({"scopes": ["ledger:write"], "services": ["ledger"], "requested_by": "frank", "held_by": "frank", "ticket": "CHG-1"})

mgmt_holder(name, groups) := {"principal": name, "kind": "management_token", "groups": groups, "token_id": "tok_m", "scopes": ["tokens:request", "tokens:read"], "local": false}

test_management_token_carries_its_holders_groups if {
	refused(decide("request", mgmt_holder("frank", ["developers"]), frank_write), "developer_production_write")
	decide("request", mgmt_holder("frank", []), frank_write).allow
}

test_approval_asks_with_the_requesters_recorded_groups if {
	r := object.union(frank_write, {"requester_groups": ["Developers"]})
	refused(decide("approve", approver, r), "developer_production_write")
	not_refused_for(decide("approve", approver, frank_write), "developer_production_write")
}

test_claim_asks_with_the_claimers_groups if {
	refused(decide("claim", person("frank", ["developers"]), frank_write), "developer_production_write")
	refused(decide("claim", mgmt_holder("frank", ["developers"]), frank_write), "developer_production_write")
	refused(decide("claim", person("frank", []), object.union(frank_write, {"requester_groups": ["developers"]})), "developer_production_write")
	decide("claim", person("frank", []), frank_write).allow
}

test_claim_of_a_read_is_not_refused_for_developers if {
	r := object.union(frank_write, {"scopes": ["ledger:read"]})
	decide("claim", person("frank", ["developers"]), r).allow
}

ledger_token(patch) := object.union(
	{
		"id": "tok_x", "owner": "ledger-sync", "created_by": "frank", "held_by": "frank",
		"scopes": ["ledger:write"], "services": ["ledger"], "cidrs": [], "lifetime_seconds": 3600,
	},
	patch,
)

rotate(actor, tok) := d if {
	d := admin.decision with input as {"action": "rotate", "actor": actor, "token": tok, "config": config}
		with data.tokengate.directory as directory
}

test_developer_does_not_renew_a_production_write if {
	refused(rotate(person("frank", ["developers"]), ledger_token({})), "developer_production_write")
	refused(rotate(mgmt_holder("frank", []), ledger_token({"holder_groups": ["developers"]})), "developer_production_write")
	refused(rotate(person("dave", []), ledger_token({"created_by": "dave", "held_by": "dave"})), "developer_production_write")
	rotate(person("frank", []), ledger_token({})).allow
	rotate(person("frank", ["developers"]), ledger_token({"scopes": ["ledger:read"]})).allow
}

test_developer_workload_gets_no_production_write if {
	bot := object.union(deployer, {"principal": "devbot"})
	refused(decide("exchange", bot, exchange_request({"owner": "devbot"})), "developer_production_write")
}

# Workloads.

test_matching_workload_exchanges if {
	d := decide("exchange", deployer, exchange_request({}))
	d.allow
}

test_workload_write_implies_read if {
	decide("exchange", deployer, exchange_request({"scopes": ["billing:read"]})).allow
}

test_workload_never_gets_delete if {
	refused(decide("exchange", deployer, exchange_request({"scopes": ["billing:delete"]})), "workload_scope_destructive")
	entry := object.union(directory.workloads[0], {"scopes": ["billing:delete"]})
	dir := object.union(directory, {"workloads": [entry]})
	refused(decide_with("exchange", deployer, exchange_request({"scopes": ["billing:delete"]}), dir), "workload_scope_destructive")
}

test_workload_never_gets_a_management_token if {
	refused(decide("exchange", deployer, exchange_request({"scopes": ["tokens:request"], "services": ["tokengate-admin"]})), "workload_management_scope")
	refused(decide("exchange", deployer, exchange_request({"scopes": ["tokens:read"]})), "workload_management_scope")
}

test_workload_token_lives_at_most_15_minutes if {
	entry := object.union(directory.workloads[0], {"max_ttl_seconds": 86400})
	dir := object.union(directory, {"workloads": [entry]})
	d := decide_with("exchange", deployer, exchange_request({"ttl_seconds": 900}), dir)
	d.allow
	d.ttl_seconds == 900
	refused(decide_with("exchange", deployer, exchange_request({"ttl_seconds": 901}), dir), "workload_ttl_exceeds_max")
}

test_workload_entry_with_a_ttl_of_zero_or_less_is_a_broken_directory if {
	every bad in [0, -60, "600"] {
		entry := object.union(directory.workloads[0], {"max_ttl_seconds": bad})
		refused(decide_with("exchange", deployer, exchange_request({"ttl_seconds": 900}), object.union(directory, {"workloads": [entry]})), "directory_invalid")
	}
}

test_workload_entry_without_a_ttl_gets_15_minutes if {
	entry := object.remove(directory.workloads[0], {"max_ttl_seconds"})
	d := decide_with("exchange", deployer, exchange_request({"ttl_seconds": 900}), object.union(directory, {"workloads": [entry]}))
	d.allow
	d.ttl_seconds == 900
}

# The entry's max_ttl_seconds (600) shortens the token: the decision's
# ttl_seconds, which the exchange applies.
test_workload_entry_shortens_the_ttl if {
	d := decide("exchange", deployer, exchange_request({"ttl_seconds": 900}))
	d.allow
	d.ttl_seconds == 600
}

test_most_generous_granting_entry_sets_the_ttl if {
	short := directory.workloads[0]
	long := object.union(short, {"max_ttl_seconds": 800})
	narrow := object.union(short, {"scopes": ["billing:read"], "max_ttl_seconds": 900})
	dir := object.union(directory, {"workloads": [short, long, narrow]})
	decide_with("exchange", deployer, exchange_request({}), dir).ttl_seconds == 800
}

test_other_actions_set_no_ttl if {
	decide("request", carol, request({})).ttl_seconds == 0
}

test_workload_gets_exactly_one_service if {
	entry := object.union(directory.workloads[0], {"services": ["billing", "search"], "scopes": ["billing:write", "search:read"]})
	dir := object.union(directory, {"workloads": [entry]})
	refused(decide_with("exchange", deployer, exchange_request({"services": ["billing", "search"], "scopes": ["billing:write", "search:read"]}), dir), "workload_one_service")
}

test_workload_without_a_matching_entry_is_refused if {
	other := workload(object.union(github_claims, {"ref": "refs/heads/feature"}))
	refused(decide("exchange", other, exchange_request({})), "workload_not_in_directory")
	gitlab := object.union(deployer, {"issuer": "gitlab"})
	refused(decide("exchange", gitlab, exchange_request({})), "workload_not_in_directory")
	refused(decide_with("exchange", deployer, exchange_request({}), {}), "workload_not_in_directory")
}

test_workload_entry_without_claims_matches_nothing if {
	anyone := workload({"sub": "repo:evil/x:ref:refs/heads/main", "repository": "evil/x"})
	refused(decide("exchange", anyone, exchange_request({"scopes": ["docs:read"], "services": ["docs"]})), "workload_not_in_directory")
}

test_workload_gets_only_what_its_entry_grants if {
	refused(decide("exchange", deployer, exchange_request({"scopes": ["ledger:write"], "services": ["ledger"]})), "workload_grant_exceeded")
	refused(decide("exchange", deployer, exchange_request({"scopes": ["billing:write"], "services": ["search"]})), "workload_grant_exceeded")
}

test_workload_claims_compare_exactly if {
	other := workload(object.union(github_claims, {"repository": "acme/billing-fork"}))
	refused(decide("exchange", other, exchange_request({})), "workload_not_in_directory")
}

# External integrations.

crm(patch) := request(object.union({"owner": "acme-crm", "scopes": ["search:read"], "services": ["search"]}, patch))

test_integration_bound_to_one_listed_service if {
	decide("request", carol, crm({})).allow
	decide("request", carol, crm({"owner": "ACME-CRM"})).allow
}

test_integration_gets_exactly_one_service if {
	refused(decide("request", carol, crm({"services": ["search", "billing"], "scopes": ["search:read", "billing:read"]})), "integration_one_service")
}

test_integration_only_on_a_service_that_lists_it if {
	refused(decide("request", carol, crm({"services": ["ledger"], "scopes": ["ledger:read"]})), "integration_service_not_allowed")
	refused(decide("request", carol, crm({"services": ["unlisted"], "scopes": ["unlisted:read"]})), "integration_service_not_allowed")
	refused(decide("approve", approver, crm({"services": ["docs"], "scopes": ["docs:read"]})), "integration_service_not_allowed")
}

test_non_integration_owner_is_not_bound_by_integration_rules if {
	decide("request", carol, request({"services": ["docs", "ledger"], "scopes": ["docs:read", "ledger:read"]})).allow
}

# How far one token reaches.

four := ["a", "b", "c", "d"]

test_at_most_three_services_by_default if {
	decide("request", carol, request({"services": ["a", "b", "c"], "scopes": ["a:read"]})).allow
	refused(decide("request", carol, request({"services": four, "scopes": ["a:read"]})), "too_many_services")
	refused(decide("approve", approver, request({"services": four, "scopes": ["a:read"]})), "too_many_services")
}

test_service_limit_comes_from_data if {
	dir := object.union(directory, {"limits": {"max_services": 4}})
	decide_with("request", carol, request({"services": four, "scopes": ["a:read"]}), dir).allow
	dir1 := object.union(directory, {"limits": {"max_services": 1}})
	refused(decide_with("request", carol, request({"services": ["a", "b"], "scopes": ["a:read"]}), dir1), "too_many_services")
}

test_no_wildcard_service_or_scope if {
	refused(decide("request", carol, request({"services": ["*"], "scopes": ["*:read"]})), "every_service")
	refused(decide("request", carol, request({"services": ["search"], "scopes": ["*:read"]})), "every_service")
	refused(decide("request", carol, request({"services": ["search"], "scopes": ["*"]})), "every_service")
}

test_no_read_on_every_listed_service if {
	small := {"services": {"billing": {}, "search": {}}}
	both := request({"services": ["billing", "search"], "scopes": ["billing:read", "search:write"]})
	refused(decide_with("request", carol, both, small), "every_service")

	# Bound to both but reading only one, or reading both with one the
	# directory does not list: not every service.
	decide_with("request", carol, request({"services": ["billing", "search"], "scopes": ["billing:read"]}), small).allow
	decide_with("request", carol, request({"services": ["billing", "other"], "scopes": ["billing:read", "other:read"]}), small).allow
}

test_a_directory_of_one_service_may_be_read_whole if {
	one := {"services": {"billing": {}}}
	decide_with("request", carol, request({"services": ["billing"], "scopes": ["billing:read"]}), one).allow
}

# Tickets.

test_production_write_needs_a_ticket if {
	r := request({"scopes": ["billing:write"], "services": ["billing"]})
	refused(decide("request", carol, r), "ticket_required")
	refused(decide("request", carol, object.union(r, {"ticket": "   "})), "ticket_required")
	refused(decide("request", carol, object.union(r, {"scopes": ["billing:delete"]})), "ticket_required")
	refused(decide("approve", approver, r), "ticket_required")
	decide("request", carol, object.union(r, {"ticket": "CHG-1042"})).allow
	decide("approve", stepped_up, object.union(r, {"ticket": "CHG-1042"})).allow
}

test_no_ticket_needed_for_reads_or_staging if {
	decide("request", carol, request({"scopes": ["billing:read"], "services": ["billing"]})).allow
	decide("request", carol, request({"scopes": ["search:write"], "services": ["search"]})).allow
}

test_production_is_case_insensitive if {
	dir := {"services": {"Billing": {"environment": "Production"}}}
	refused(decide_with("request", carol, request({"scopes": ["billing:write"], "services": ["billing"]}), dir), "ticket_required")
}

# Step-up: approving a production write needs a security key's assertion
# bound to the request (the console's), unless the service opts out.

stepped_up := object.union(approver, {"step_up": true})

test_production_write_approval_needs_a_step_up if {
	r := request({"scopes": ["billing:write"], "services": ["billing"], "ticket": "CHG-1042"})
	refused(decide("approve", approver, r), "step_up_required")
	refused(decide("approve", approver, object.union(r, {"scopes": ["billing:delete"]})), "step_up_required")
	refused(decide("approve", object.union(approver, {"step_up": "true"}), r), "step_up_required")
	decide("approve", stepped_up, r).allow
}

test_step_up_not_needed_for_reads_staging_or_other_actions if {
	not_refused_for(decide("approve", approver, request({"scopes": ["billing:read"], "services": ["billing"]})), "step_up_required")
	not_refused_for(decide("approve", approver, request({"scopes": ["search:write"], "services": ["search"]})), "step_up_required")
	not_refused_for(decide("deny", approver, request({"scopes": ["billing:write"], "services": ["billing"], "ticket": "CHG-1"})), "step_up_required")
}

test_service_entry_opts_out_of_step_up if {
	off := object.union(directory, {"services": {"billing": {"environment": "production", "step_up": false}}})
	r := request({"scopes": ["billing:write"], "services": ["billing"], "ticket": "CHG-1042"})
	decide_with("approve", approver, r, off).allow
	not_off := object.union(directory, {"services": {"billing": {"environment": "production", "step_up": "no"}}})
	refused(decide_with("approve", approver, r, not_off), "step_up_required")
}

# Rate limits.

test_exchanged_token_gets_the_shipped_rate_limit if {
	d := decide("exchange", deployer, exchange_request({}))
	d.allow
	d.rate_limit == {"requests": 600, "window": "1m"}
}

test_exchanged_token_gets_its_entrys_rate_limit if {
	entry := object.union(directory.workloads[0], {"rate_limit": {"requests": 30, "window": "1m"}})
	d := decide_with("exchange", deployer, exchange_request({}), object.union(directory, {"workloads": [entry]}))
	d.allow
	d.rate_limit == {"requests": 30, "window": "1m"}
}

test_other_actions_set_no_rate_limit if {
	d := decide("issue", approver, request({}))
	d.rate_limit == {}
}

test_token_for_a_workload_must_ask_for_a_rate_limit if {
	for_workload := request({"owner": "workload:repo:acme/billing"})
	refused(decide("request", person("carol", []), for_workload), "rate_limit_required")
	refused(decide("issue", approver, for_workload), "rate_limit_required")
	limited := object.union(for_workload, {"rate_limit": {"requests": 100, "window": "1m"}})
	not "rate_limit_required" in decide("request", person("carol", []), limited).reasons
	not "rate_limit_required" in decide("request", person("carol", []), request({})).reasons
}
