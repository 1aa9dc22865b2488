package tokengate.admin_roles_test

import data.tokengate.admin

config := {"max_ttl_seconds": 2592000}

person(name, groups) := {"principal": name, "kind": "person", "groups": groups, "token_id": "", "scopes": [], "local": false, "issuer": "https://login.example.com/", "claims": {}}

mgmt(name, scopes) := {"principal": name, "kind": "management_token", "token_id": "tok_m", "scopes": scopes, "local": false}

workload := {"principal": "repo:acme/billing:ref:refs/heads/main", "kind": "workload", "token_id": "", "scopes": [], "local": false, "issuer": "github", "claims": {"repository": "acme/billing"}}

read_request := {
	"id": "req_1", "owner": "report-job", "purpose": "nightly report",
	"scopes": ["search:read"], "services": ["search"], "cidrs": ["10.0.0.0/8"],
	"ttl_seconds": 3600, "max_uses": 0, "requested_by": "carol", "held_by": "carol",
}

write_request := object.union(read_request, {"scopes": ["search:write"]})

delete_request := object.union(read_request, {"scopes": ["search:delete"]})

production_read := object.union(read_request, {"scopes": ["billing:read"], "services": ["billing"]})

management_request := object.union(read_request, {"owner": "carol", "scopes": ["tokens:read"], "services": ["tokengate-admin"]})

directory := {
	"groups": {"approvers": ["Alice"], "developers": ["dave"]},
	"services": {"billing": {"environment": "production"}, "search": {"environment": "staging"}},
}

no_approvers := {"groups": {"developers": ["dave"]}, "services": directory.services}

decide(action, actor, request, dir) := d if {
	d := admin.decision with input as {"action": action, "actor": actor, "request": request, "config": config}
		with data.tokengate.directory as dir
}

# The shipped default: no directory data at all.
decide_bare(action, actor, request) := d if {
	d := admin.decision with input as {"action": action, "actor": actor, "request": request, "config": config}
}

refused(d, reason) if {
	d.allow == false
	reason in d.reasons
}

# People need no management scope to request and read.

test_person_requests_without_a_scope if {
	d := decide("request", person("carol", ["developers"]), read_request, directory)
	d.allow
	d.auto_approve
}

# Auto-approval covers only what the directory vouches for: a known
# principal and a service that is not production, or a service whose
# entry says "auto_approve": true.

test_unknown_person_waits_for_approval if {
	d := decide("request", person("carol", []), read_request, directory)
	d.allow
	not d.auto_approve
}

test_idp_group_the_directory_does_not_define_is_unknown if {
	d := decide("request", person("carol", ["staff"]), read_request, directory)
	d.allow
	not d.auto_approve
}

test_directory_member_is_known if {
	d := decide("request", mgmt("dave", ["tokens:request"]), object.union(read_request, {"requested_by": "dave", "held_by": "dave"}), directory)
	d.allow
	d.auto_approve
}

test_empty_group_key_makes_its_idp_group_known if {
	d := decide("request", person("carol", ["Readers"]), read_request, object.union(directory, {"groups": {"readers": []}}))
	d.auto_approve
}

test_production_read_waits_even_for_a_known_person if {
	d := decide("request", person("carol", ["developers"]), production_read, directory)
	d.allow
	not d.auto_approve
}

test_production_read_waits_for_a_person_in_no_group if {
	d := decide("request", person("carol", []), production_read, directory)
	d.allow
	not d.auto_approve
}

opted_in := object.union(directory, {"services": {"billing": {"environment": "production", "auto_approve": true}}})

test_service_entry_opts_in_to_auto_approval if {
	decide("request", person("carol", []), production_read, opted_in).auto_approve
	decide("request", person("carol", []), object.union(production_read, {"services": ["BILLING"]}), opted_in).auto_approve
}

opted_in_with(flag) := object.union(directory, {"services": {"billing": {"environment": "production", "auto_approve": flag}}})

test_opt_in_must_be_exactly_true if {
	every flag in ["yes", 1, "true", {}, false] {
		not decide("request", person("carol", []), production_read, opted_in_with(flag)).auto_approve
	}
}

test_every_service_must_be_auto_approvable if {
	both := object.union(production_read, {"scopes": ["billing:read", "search:read"], "services": ["billing", "search"]})
	dir := object.union(opted_in, {"services": {"billing": {"environment": "production", "auto_approve": true}, "search": {"environment": "staging"}, "docs": {}}})
	not decide("request", person("carol", []), both, dir).auto_approve
	decide("request", person("carol", ["developers"]), both, dir).auto_approve
}

test_person_reads_without_a_scope if {
	d := admin.decision with input as {"action": "read", "actor": person("carol", []), "config": config}
	d.allow
}

test_management_token_still_needs_its_scope if {
	refused(decide("request", mgmt("carol", ["tokens:read"]), read_request, directory), "scope_missing")
}

test_person_requests_only_for_themselves if {
	refused(decide("request", person("erin", []), read_request, directory), "request_not_for_self")
	refused(decide("request", person("carol", []), object.union(read_request, {"held_by": "erin"}), directory), "request_not_for_self")
}

test_person_name_compares_case_insensitively if {
	decide("request", person("Carol", []), read_request, directory).allow
}

# What each kind may do.

test_person_cannot_issue_or_bootstrap_or_exchange if {
	refused(decide("issue", person("carol", []), read_request, directory), "actor_kind_not_allowed")
	refused(decide("exchange", person("carol", []), read_request, directory), "actor_kind_not_allowed")
	d := admin.decision with input as {"action": "bootstrap", "actor": person("carol", []), "bootstrap": {"requester": "a", "approver": "b"}, "config": config}
	refused(d, "actor_kind_not_allowed")
}

test_workload_may_only_exchange if {
	refused(decide("request", workload, read_request, directory), "actor_kind_not_allowed")
	refused(decide("approve", workload, read_request, directory), "actor_kind_not_allowed")
	d := admin.decision with input as {"action": "read", "actor": workload, "config": config}
	refused(d, "actor_kind_not_allowed")
}

test_management_token_cannot_exchange if {
	refused(decide("exchange", mgmt("bob", ["tokens:request"]), read_request, directory), "actor_kind_not_allowed")
	refused(decide("exchange", {"principal": "local-operator", "token_id": "", "scopes": [], "local": true}, read_request, directory), "actor_kind_not_allowed")
}

test_unknown_kind_refused if {
	refused(decide("read", object.union(person("carol", []), {"kind": "robot"}), read_request, directory), "actor_kind_not_allowed")
}

# Approvers.

test_approver_from_directory_approves_writes_and_production if {
	decide("approve", person("alice", []), write_request, directory).allow
	decide("approve", person("alice", []), delete_request, directory).allow
	decide("approve", person("ALICE", []), production_read, directory).allow
	decide("deny", person("alice", []), write_request, directory).allow
}

test_idp_group_makes_an_approver if {
	decide("approve", person("frank", ["approvers"]), write_request, directory).allow
	decide("approve", person("frank", ["Approvers"]), write_request, no_approvers).allow
}

test_person_outside_approvers_cannot_approve_anything if {
	refused(decide("approve", person("frank", ["developers"]), write_request, directory), "approver_required")
	refused(decide("approve", person("frank", []), read_request, directory), "approver_required")
	refused(decide("deny", person("frank", []), read_request, directory), "approver_required")
	refused(decide("approve", person("frank", []), read_request, no_approvers), "approver_required")
}

test_scope_holder_outside_approvers_cannot_approve_sensitive if {
	bob := mgmt("bob", ["tokens:approve"])
	refused(decide("approve", bob, write_request, directory), "approver_required")
	refused(decide("approve", bob, delete_request, directory), "approver_required")
	refused(decide("approve", bob, production_read, directory), "approver_required")
	refused(decide("approve", bob, management_request, directory), "approver_required")
	refused(decide("deny", bob, write_request, directory), "approver_required")

	# A read-only, non-production request needs only the scope.
	decide("approve", bob, read_request, directory).allow
}

test_scope_holder_in_approvers_approves_sensitive if {
	decide("approve", mgmt("alice", ["tokens:approve"]), write_request, directory).allow
}

test_without_an_approvers_group_scope_holders_approve if {
	bob := mgmt("bob", ["tokens:approve"])
	decide("approve", bob, write_request, no_approvers).allow
	decide("approve", bob, production_read, no_approvers).allow
	decide_bare("approve", bob, write_request).allow
	decide_bare("approve", bob, management_request).allow
}

test_an_empty_approvers_group_is_defined if {
	refused(decide("approve", mgmt("bob", ["tokens:approve"]), write_request, {"groups": {"approvers": []}}), "approver_required")
}

test_approver_still_cannot_self_approve if {
	refused(decide("approve", person("alice", []), object.union(write_request, {"requested_by": "alice", "held_by": "alice"}), directory), "self_approval")
}

test_approver_still_needs_the_scope_on_a_management_token if {
	refused(decide("approve", mgmt("alice", ["tokens:request"]), write_request, directory), "scope_missing")
}

# The shipped directory file is empty and changes nothing.

test_shipped_directory_is_empty if {
	data.tokengate.directory.groups == {}
	data.tokengate.directory.workloads == []
	decide_bare("approve", mgmt("bob", ["tokens:approve"]), write_request).allow
}

# A directory of the wrong shape fails closed.

test_malformed_directory_fails_closed if {
	refused(decide("read", person("carol", []), read_request, ["alice"]), "directory_invalid")
	refused(decide("read", person("carol", []), read_request, {"groups": {"approvers": "alice"}}), "directory_invalid")
	refused(decide("read", person("carol", []), read_request, {"groups": {"approvers": [1]}}), "directory_invalid")
	refused(decide("read", person("carol", []), read_request, {"services": {"billing": "production"}}), "directory_invalid")
	refused(decide("read", person("carol", []), read_request, {"workloads": {}}), "directory_invalid")
}

test_malformed_directory_does_not_block_revocation if {
	tok := {"id": "tok_x", "owner": "report-job", "created_by": "carol", "held_by": "carol", "scopes": ["search:read"], "services": ["search"], "cidrs": [], "lifetime_seconds": 3600}
	d := admin.decision with input as {"action": "revoke", "actor": mgmt("sec", ["tokens:revoke"]), "token": tok, "config": config}
		with data.tokengate.directory as ["broken"]
	d.allow
}

test_missing_scope_is_not_also_reported_as_approver_required if {
	d := decide("approve", mgmt("bob", ["tokens:request"]), write_request, directory)
	d.reasons == ["scope_missing"]
}

# person_needed tells the approver which rule of just-in-time approval a
# request missed.

test_auto_approved_request_needs_nobody if {
	d := decide("request", person("carol", ["developers"]), read_request, directory)
	d.auto_approve
	d.person_needed == []
}

test_person_needed_names_each_missed_rule if {
	decide("request", person("carol", []), read_request, directory).person_needed == ["requester_unknown"]
	decide("request", person("carol", ["developers"]), production_read, directory).person_needed == ["production_service"]
	decide("request", person("carol", ["developers"]), write_request, directory).person_needed == ["write_scope"]
	long_unbound := object.union(read_request, {"ttl_seconds": 7200, "cidrs": [], "max_uses": 0})
	decide("request", person("carol", ["developers"]), long_unbound, directory).person_needed == ["ttl_over_jit", "unbound"]
	"management_token" in decide("request", person("carol", ["developers"]), management_request, directory).person_needed
}

test_person_needed_only_for_requests if {
	decide("approve", person("Alice", ["approvers"]), write_request, directory).person_needed == []
}

test_opted_in_production_service_needs_nobody if {
	decide("request", person("carol", []), production_read, opted_in).person_needed == []
}

test_approvers_are_the_directorys_less_the_requester if {
	decide("approve", person("Alice", ["approvers"]), read_request, directory).approvers == ["alice"]
	two := object.union(directory, {"groups": {"approvers": ["Alice", "carol"]}})
	decide("approve", person("Alice", []), read_request, two).approvers == ["alice"]
	decide("read", person("Alice", []), object.union(read_request, {"requested_by": "dave"}), two).approvers == ["alice", "carol"]
	decide_bare("approve", person("Alice", []), read_request).approvers == []
}
