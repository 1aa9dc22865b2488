package tokengate.admin_test

import data.tokengate.admin

requester := {"principal": "alice", "token_id": "tok_a", "scopes": ["tokens:request", "tokens:read"], "local": false}

approver := {"principal": "bob", "token_id": "tok_b", "scopes": ["tokens:approve", "tokens:read"], "local": false}

local_operator := {"principal": "local-operator", "token_id": "", "scopes": [], "local": true}

config := {"max_ttl_seconds": 2592000}

read_request := {
	"id": "req_1", "owner": "report-job", "purpose": "nightly report",
	"scopes": ["billing:read"], "services": ["billing"], "cidrs": ["10.0.0.0/8"],
	"ttl_seconds": 3600, "max_uses": 0, "requested_by": "alice",
}

write_request := object.union(read_request, {"scopes": ["billing:write"]})

# The directory knows alice, so her read-only, short, bound requests may
# be approved automatically (auto-approval covers known principals only).
knows_alice := {"groups": {"requesters": ["alice"]}}

ask(action, actor, request) := d if {
	d := admin.decision with input as {"action": action, "actor": actor, "request": request, "config": config}
		with data.tokengate.directory as knows_alice
}

on_token(action, actor, tok) := d if {
	d := admin.decision with input as {"action": action, "actor": actor, "token": tok, "config": config}
}

refused(d, reason) if {
	d.allow == false
	reason in d.reasons
}

some_token := {
	"id": "tok_x", "owner": "report-job", "created_by": "alice", "scopes": ["billing:write"],
	"services": ["billing"], "cidrs": [], "lifetime_seconds": 86400,
}

# Just in time.

test_read_only_short_bound_request_is_auto_approved if {
	d := ask("request", requester, read_request)
	d.allow
	d.auto_approve
}

test_use_limited_request_counts_as_bound if {
	d := ask("request", requester, object.union(read_request, {"cidrs": [], "max_uses": 5}))
	d.auto_approve
}

test_write_request_waits if {
	d := ask("request", requester, write_request)
	d.allow
	not d.auto_approve
}

test_long_request_waits if {
	d := ask("request", requester, object.union(read_request, {"ttl_seconds": 3601}))
	d.allow
	not d.auto_approve
}

# Only a real binding counts: a CIDR no wider than /8 (IPv4) or /32
# (IPv6), every CIDR narrow, a use limit of 1 to 1000.

narrow(cidrs) := object.union(read_request, {"cidrs": cidrs, "max_uses": 0})

test_narrowest_ranges_that_count_as_bound if {
	ask("request", requester, narrow(["10.0.0.0/8"])).auto_approve
	ask("request", requester, narrow(["203.0.113.7/32"])).auto_approve
	ask("request", requester, narrow(["2001:db8::/32"])).auto_approve
	ask("request", requester, narrow(["2001:db8::1/128", "10.1.0.0/16"])).auto_approve
}

test_whole_internet_is_not_a_binding if {
	not ask("request", requester, narrow(["0.0.0.0/0"])).auto_approve
	not ask("request", requester, narrow(["::/0"])).auto_approve
	not ask("request", requester, narrow(["0.0.0.0/0", "::/0"])).auto_approve
}

test_ranges_wider_than_the_limit_are_not_a_binding if {
	not ask("request", requester, narrow(["8.0.0.0/7"])).auto_approve
	not ask("request", requester, narrow(["128.0.0.0/1"])).auto_approve
	not ask("request", requester, narrow(["2001:db8::/31"])).auto_approve
	not ask("request", requester, narrow(["2000::/3"])).auto_approve
}

test_one_wide_range_among_narrow_ones_is_not_a_binding if {
	not ask("request", requester, narrow(["10.0.0.0/8", "0.0.0.0/0"])).auto_approve
	not ask("request", requester, narrow(["2001:db8::/48", "::/1"])).auto_approve
}

test_ipv4_mapped_or_malformed_cidrs_are_not_a_binding if {
	not ask("request", requester, narrow(["::ffff:0.0.0.0/96"])).auto_approve
	not ask("request", requester, narrow(["::ffff:10.0.0.0/104"])).auto_approve
	not ask("request", requester, narrow(["10.0.0.0"])).auto_approve
}

test_use_limits_that_count_as_bound if {
	ask("request", requester, object.union(read_request, {"cidrs": [], "max_uses": 1})).auto_approve
	ask("request", requester, object.union(read_request, {"cidrs": [], "max_uses": 1000})).auto_approve
}

test_huge_use_limits_are_not_a_binding if {
	not ask("request", requester, object.union(read_request, {"cidrs": [], "max_uses": 1001})).auto_approve
	not ask("request", requester, object.union(read_request, {"cidrs": [], "max_uses": 9223372036854775807})).auto_approve
}

test_wide_range_with_a_real_use_limit_is_bound if {
	ask("request", requester, object.union(read_request, {"cidrs": ["0.0.0.0/0"], "max_uses": 10})).auto_approve
}

test_unbound_request_waits if {
	d := ask("request", requester, object.union(read_request, {"cidrs": []}))
	d.allow
	not d.auto_approve
}

test_management_token_request_waits if {
	d := ask("request", requester, object.union(read_request, {"owner": "alice", "scopes": ["tokens:read"], "services": ["tokengate-admin"]}))
	d.allow
	not d.auto_approve
}

# Scopes of the caller.

test_approver_cannot_request if refused(ask("request", approver, read_request), "scope_missing")

test_requester_cannot_approve if refused(ask("approve", requester, object.union(write_request, {"requested_by": "carol"})), "scope_missing")

test_read_needs_read_scope if refused(on_token("read", {"principal": "dave", "scopes": ["tokens:request"], "local": false}, some_token), "scope_missing")

# Separation of duties.

test_other_person_approves if {
	ask("approve", approver, write_request).allow
}

test_self_approval_refused if {
	same_person := object.union(approver, {"principal": "alice", "token_id": "tok_second"})
	refused(ask("approve", same_person, write_request), "self_approval")
}

test_self_approval_with_a_case_variant_refused if {
	same_person := object.union(approver, {"principal": "ALICE"})
	refused(ask("approve", same_person, write_request), "self_approval")
	refused(ask("approve", approver, object.union(write_request, {"requested_by": "Bob", "held_by": "Bob"})), "self_approval")
}

# The approver compares against who will hold the secret too.
test_self_approval_of_what_one_will_hold_refused if {
	refused(ask("approve", approver, object.union(write_request, {"held_by": "bob"})), "self_approval")
}

test_claim_by_a_case_variant_refused if refused(ask("claim", object.union(requester, {"principal": "Alice"}), write_request), "not_requester")

test_claim_without_request_fails_closed if {
	d := admin.decision with input as {"action": "claim", "actor": requester, "config": config}
	refused(d, "not_requester")
}

test_approver_cannot_claim if refused(ask("claim", object.union(approver, {"scopes": ["tokens:request"]}), write_request), "not_requester")

test_requester_claims if {
	ask("claim", requester, write_request).allow
}

# A management token is personal: named after the one who will hold it.

mgmt_request(owner) := object.union(read_request, {"owner": owner, "scopes": ["tokens:approve", "tokens:read"], "services": ["tokengate-admin"]})

test_management_token_for_oneself if {
	ask("request", requester, mgmt_request("alice")).allow
	ask("request", requester, mgmt_request("Alice")).allow
	ask("approve", approver, mgmt_request("alice")).allow
	ask("claim", requester, mgmt_request("alice")).allow
}

test_management_token_for_someone_else_refused if {
	refused(ask("request", requester, mgmt_request("carol")), "management_token_not_personal")
	refused(ask("approve", approver, mgmt_request("carol")), "management_token_not_personal")
	refused(ask("claim", requester, mgmt_request("carol")), "management_token_not_personal")
	refused(ask("issue", local_operator, mgmt_request("carol")), "management_token_not_personal")
}

test_exchanged_management_token_is_personal_too if {
	workload := {"principal": "repo:octo/app:ref:refs/heads/main", "kind": "workload", "token_id": "", "scopes": [], "local": false}
	asked := object.union(mgmt_request("ann"), {"requested_by": workload.principal, "held_by": workload.principal})
	refused(ask("exchange", workload, asked), "management_token_not_personal")
}

test_management_token_personal_by_holder_not_requester_field if {
	refused(ask("approve", approver, object.union(mgmt_request("alice"), {"held_by": "carol"})), "management_token_not_personal")
}

test_data_token_owner_may_name_anyone if {
	ask("request", requester, object.union(write_request, {"owner": "carol"})).allow
}

test_reserved_principal_cannot_act if {
	impostor := object.union(requester, {"principal": "local-operator"})
	refused(ask("request", impostor, read_request), "principal_reserved")
	issued_locally := object.union(some_token, {"created_by": "local-operator", "held_by": "local-operator"})
	refused(on_token("rotate", impostor, issued_locally), "principal_reserved")
	refused(on_token("revoke", object.union(impostor, {"principal": "Local-Operator"}), issued_locally), "principal_reserved")
}

test_workload_names_are_reserved_for_workloads if {
	posing := object.union(requester, {"principal": "Workload:github:repo:octo/app:ref:refs/heads/main"})
	refused(ask("request", posing, read_request), "principal_reserved")
	held := object.union(some_token, {"created_by": posing.principal, "held_by": posing.principal})
	refused(on_token("rotate", posing, held), "principal_reserved")
}

test_token_with_both_duties_cannot_be_requested if {
	both := object.union(read_request, {"scopes": ["tokens:request", "tokens:approve"], "services": ["tokengate-admin"]})
	refused(ask("request", requester, both), "duties_combined")
}

test_caller_holding_both_duties_refused if {
	both := object.union(requester, {"scopes": ["tokens:request", "tokens:approve"]})
	refused(ask("request", both, read_request), "duties_combined")
}

test_bootstrap_needs_two_people if {
	d := admin.decision with input as {"action": "bootstrap", "actor": local_operator, "bootstrap": {"requester": "alice", "approver": "alice"}, "config": config}
	refused(d, "self_approval")
}

test_bootstrap_case_variants_are_one_person if {
	d := admin.decision with input as {"action": "bootstrap", "actor": local_operator, "bootstrap": {"requester": "Ann", "approver": "ann"}, "config": config}
	refused(d, "self_approval")
}

test_bootstrap_cannot_name_a_workload if {
	d := admin.decision with input as {"action": "bootstrap", "actor": local_operator, "bootstrap": {"requester": "workload:github:x", "approver": "ann"}, "config": config}
	"principal_reserved" in d.reasons
}

test_bootstrap_cannot_name_the_local_operator if {
	d := admin.decision with input as {"action": "bootstrap", "actor": local_operator, "bootstrap": {"requester": "Local-Operator", "approver": "bob"}, "config": config}
	refused(d, "principal_reserved")
}

test_bootstrap_with_two_people if {
	d := admin.decision with input as {"action": "bootstrap", "actor": local_operator, "bootstrap": {"requester": "alice", "approver": "bob"}, "config": config}
	d.allow
}

# What may be asked for.

test_purpose_required if refused(ask("request", requester, object.union(read_request, {"purpose": "  "})), "purpose_required")

test_ttl_capped if refused(ask("request", requester, object.union(read_request, {"ttl_seconds": 2592001})), "ttl_exceeds_max")

# Revocation and rotation.

test_revoker_revokes_anything if {
	on_token("revoke", {"principal": "sec", "scopes": ["tokens:revoke"], "local": false}, some_token).allow
}

test_holder_revokes_own if {
	on_token("revoke", {"principal": "carol", "scopes": [], "local": false}, held_by_carol).allow
}

# The owner is a name typed into the request: it grants nothing.
test_owner_name_cannot_revoke if refused(on_token("revoke", {"principal": "report-job", "scopes": [], "local": false}, some_token), "not_owner")

test_requester_revokes_what_they_asked_for if {
	on_token("revoke", requester, some_token).allow
}

test_stranger_cannot_revoke if refused(on_token("revoke", {"principal": "eve", "scopes": ["tokens:read"], "local": false}, some_token), "not_owner")

test_local_operator_always_revokes if {
	on_token("revoke", local_operator, some_token).allow
}

test_requester_rotates if {
	on_token("rotate", requester, some_token).allow
}

test_stranger_cannot_rotate if refused(on_token("rotate", approver, some_token), "not_owner")

# Custody: who holds a token decides who may rotate it (and so receive its
# next secret), not who is named its owner nor who first asked for it.

held_by_carol := object.union(some_token, {"owner": "bob", "created_by": "alice", "held_by": "carol"})

test_holder_rotates if {
	on_token("rotate", {"principal": "carol", "scopes": [], "local": false}, held_by_carol).allow
}

test_owner_name_cannot_rotate if refused(on_token("rotate", approver, held_by_carol), "not_owner")

test_earlier_requester_cannot_rotate_what_another_holds if refused(on_token("rotate", requester, held_by_carol), "not_owner")

test_case_variant_of_holder_cannot_rotate if refused(on_token("rotate", {"principal": "Carol", "scopes": [], "local": false}, held_by_carol), "not_owner")

test_case_variant_of_holder_cannot_revoke if refused(on_token("revoke", {"principal": "CAROL", "scopes": [], "local": false}, held_by_carol), "not_owner")

# A token stored before holders were recorded: its creator holds it, its
# owner still does not.
test_legacy_token_rotated_by_its_creator_only if {
	on_token("rotate", requester, some_token).allow
	refused(on_token("rotate", {"principal": "report-job", "scopes": [], "local": false}, some_token), "not_owner")
}

test_rotate_without_token_fails_closed if {
	d := admin.decision with input as {"action": "rotate", "actor": requester, "config": config}
	refused(d, "not_owner")
}

# The local operator's bounds.

test_local_operator_issues_read_only_short if {
	ask("issue", local_operator, read_request).allow
}

test_local_operator_cannot_issue_write if refused(ask("issue", local_operator, write_request), "local_operator_bounds")

test_local_operator_cannot_issue_long if refused(ask("issue", local_operator, object.union(read_request, {"ttl_seconds": 7200})), "local_operator_bounds")

test_local_operator_cannot_issue_management_tokens if {
	mgmt := object.union(read_request, {"scopes": ["tokens:read"], "services": ["tokengate-admin"]})
	refused(ask("issue", local_operator, mgmt), "management_token_needs_approval")
}

test_local_operator_cannot_rotate_write_token if refused(on_token("rotate", local_operator, some_token), "local_operator_bounds")

test_local_operator_rotates_read_only_short if {
	on_token("rotate", local_operator, object.union(some_token, {"scopes": ["billing:read"], "lifetime_seconds": 1800})).allow
}

test_missing_input_fails_closed if {
	d := admin.decision with input as {}
	refused(d, "action_unknown")
	refused(d, "actor_missing")
}

test_blank_principal_is_no_one if {
	nobody := {
		"action": "rotate", "actor": {"principal": " ", "kind": "management_token", "token_id": "tok_x", "scopes": [], "local": false, "groups": [], "claims": {}, "issuer": ""},
		"token": object.union(some_token, {"created_by": "", "held_by": ""}), "config": config,
	}
	blank := admin.decision with input as nobody
	refused(blank, "actor_missing")
	empty := admin.decision with input as object.union(nobody, {"actor": object.union(nobody.actor, {"principal": ""})})
	refused(empty, "actor_missing")
}

test_unknown_action_refused if refused(ask("delete_everything", local_operator, read_request), "action_unknown")

# Reporting leaked secrets revokes them: who may revoke any token may
# report; a token that may only read or request may not.
report_leak(actor) := d if {
	d := admin.decision with input as {"action": "report_leak", "actor": actor, "config": config}
}

test_report_leak_needs_revoke_scope if {
	refused(report_leak(requester), "scope_missing")
	report_leak(object.union(requester, {"scopes": ["tokens:revoke"]})).allow
}

test_local_operator_reports_leaks if report_leak(local_operator).allow

test_workload_cannot_report_leaks if {
	refused(report_leak({"principal": "workload:ci", "kind": "workload", "token_id": "", "scopes": ["tokens:revoke"], "local": false}), "actor_kind_not_allowed")
}
