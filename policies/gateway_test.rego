package tokengate.gateway_test

import data.tokengate.gateway

now := 1700000000000000000

hour := 3600000000000

good_input := {
	"token": {
		"id": "tok_test",
		"owner": "alice",
		"purpose": "nightly billing export",
		"scopes": ["billing:read"],
		"services": ["billing"],
		"cidrs": ["10.0.0.0/8", "2001:db8::/32"],
		"not_before": now - hour,
		"expires_at": now + hour,
		"max_uses": 0,
		"uses": 0,
		"revoked_at": 0,
		"grace_until": 0,
	},
	"request": {"method": "GET", "host": "api.example.com", "path": "/billing/invoices", "remote_ip": "10.1.2.3", "headers": {}},
	"route": {"service": "billing"},
	"now": now,
}

with_token(patch) := object.union(good_input, {"token": object.union(good_input.token, patch)})

with_request(patch) := object.union(good_input, {"request": object.union(good_input.request, patch)})

allowed(inp) if {
	d := gateway.decision with input as inp
	d.allow == true
	d.reasons == []
}

denied_for(inp, reason) if {
	d := gateway.decision with input as inp
	d.allow == false
	reason in d.reasons
}

test_valid_token_allowed if {
	d := gateway.decision with input as good_input
	d.allow == true
	d.reasons == []
}

test_head_and_options_are_reads if {
	allowed(with_request({"method": "HEAD"}))
	allowed(with_request({"method": "OPTIONS"}))
}

test_ipv6_in_range_allowed if {
	allowed(with_request({"remote_ip": "2001:db8::1"}))
}

test_no_cidrs_means_any_ip if {
	allowed(object.union(with_token({"cidrs": []}), {"request": object.union(good_input.request, {"remote_ip": "192.0.2.1"})}))
}

test_write_scope_allows_write_and_read if {
	inp := with_token({"scopes": ["billing:write"]})
	allowed(inp)
	allowed(object.union(inp, {"request": object.union(inp.request, {"method": "POST"})}))
}

test_revoked if denied_for(with_token({"revoked_at": now - 1}), "token_revoked")

test_rotated_after_grace if denied_for(with_token({"grace_until": now}), "token_rotated")

test_rotated_within_grace_allowed if {
	allowed(with_token({"grace_until": now + 1}))
}

test_expired if denied_for(with_token({"expires_at": now}), "token_expired")

test_not_yet_valid if denied_for(with_token({"not_before": now + 1}), "token_not_yet_valid")

test_uses_exhausted if denied_for(with_token({"max_uses": 3, "uses": 3}), "uses_exhausted")

test_last_use_allowed if {
	allowed(with_token({"max_uses": 3, "uses": 2}))
}

test_service_not_bound if {
	inp := object.union(good_input, {"route": {"service": "search"}})
	denied_for(inp, "service_not_bound")
}

test_write_with_read_scope_is_scope_missing if denied_for(with_request({"method": "DELETE"}), "scope_missing")

test_ip_not_allowed_v4 if denied_for(with_request({"remote_ip": "192.0.2.1"}), "ip_not_allowed")

test_ip_not_allowed_v6 if denied_for(with_request({"remote_ip": "2001:db9::1"}), "ip_not_allowed")

test_every_failing_check_is_reported if {
	inp := object.union(with_token({"expires_at": now, "revoked_at": 1}), {"route": {"service": "search"}})
	d := gateway.decision with input as inp
	d.reasons == ["scope_missing", "service_not_bound", "token_expired", "token_revoked"]
}

# token_missing and token_malformed are decided by the gateway before any
# lookup, and token_unknown after the store has no such hash; the policy is
# not consulted for them. Should it ever be handed no token, it still denies.
test_missing_token_fails_closed if {
	denied_for({"request": good_input.request, "route": good_input.route, "now": now}, "token_unknown")
}

test_management_route_leaves_scopes_to_admin_policy if {
	inp := object.union(
		with_token({"scopes": ["tokens:request"], "services": ["tokengate-admin"]}),
		{"route": {"service": "tokengate-admin"}, "request": object.union(good_input.request, {"method": "POST"})},
	)
	allowed(inp)
}
