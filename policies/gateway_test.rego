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
	},
	"request": {"method": "GET", "host": "api.example.com", "path": "/billing/invoices", "raw_path": "/billing/invoices", "remote_ip": "10.1.2.3", "headers": {}},
	"route": {"service": "billing"},
	"now": now,
}

with_token(patch) := object.union(good_input, {"token": object.union(good_input.token, patch)})

with_request(patch) := object.union(good_input, {"request": object.union(good_input.request, patch)})

# The gateway allows exactly when reasons is empty.
allowed(inp) if {
	r := gateway.reasons with input as inp
	r == set()
}

denied_for(inp, reason) if {
	r := gateway.reasons with input as inp
	reason in r
}

test_valid_token_allowed if {
	allowed(good_input)
	gateway.scope == "billing:read" with input as good_input
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
	every m in ["POST", "PUT", "PATCH"] {
		allowed(object.union(inp, {"request": object.union(inp.request, {"method": m})}))
	}
}

# DELETE has a scope of its own: write does not cover it, and it covers
# nothing else.
test_write_scope_does_not_allow_delete if {
	inp := object.union(with_token({"scopes": ["billing:write"]}), {"request": object.union(good_input.request, {"method": "DELETE"})})
	denied_for(inp, "scope_missing")
	gateway.scope == "billing:delete" with input as inp
}

test_delete_scope_allows_delete_only if {
	inp := with_token({"scopes": ["billing:delete"]})
	allowed(object.union(inp, {"request": object.union(inp.request, {"method": "DELETE"})}))
	every m in ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"] {
		denied_for(object.union(inp, {"request": object.union(inp.request, {"method": m})}), "scope_missing")
	}
}

# An upper-casing upstream would read "delete" as DELETE.
test_lower_case_delete_needs_the_delete_scope if {
	inp := object.union(with_token({"scopes": ["billing:write"]}), {"request": object.union(good_input.request, {"method": "delete"})})
	denied_for(inp, "scope_missing")
	gateway.scope == "billing:delete" with input as inp
}

test_unknown_methods_need_write if {
	every m in ["PROPFIND", "TRACE", "CONNECT", "PURGE"] {
		denied_for(with_request({"method": m}), "scope_missing")
		allowed(object.union(with_token({"scopes": ["billing:write"]}), {"request": object.union(good_input.request, {"method": m})}))
	}
}

test_delete_scope_of_another_service_does_not_count if {
	inp := object.union(with_token({"scopes": ["search:delete"]}), {"request": object.union(good_input.request, {"method": "DELETE"})})
	denied_for(inp, "scope_missing")
}

# Revoked, rotated, expired, not yet valid and used-up tokens never reach
# this policy: the gateway refuses them in Go first (tested in
# internal/gateway). The policy only sees live tokens.

test_service_not_bound if {
	inp := object.union(good_input, {"route": {"service": "search"}})
	denied_for(inp, "service_not_bound")
}

test_write_with_read_scope_is_scope_missing if denied_for(with_request({"method": "DELETE"}), "scope_missing")

test_ip_not_allowed_v4 if denied_for(with_request({"remote_ip": "192.0.2.1"}), "ip_not_allowed")

test_ip_not_allowed_v6 if denied_for(with_request({"remote_ip": "2001:db9::1"}), "ip_not_allowed")

test_write_scope_reported if {
	inp := with_request({"method": "POST"})
	gateway.scope == "billing:write" with input as inp
	denied_for(inp, "scope_missing")
}

test_every_failing_check_is_reported if {
	inp := object.union(with_request({"remote_ip": "192.0.2.1"}), {"route": {"service": "search"}})
	r := gateway.reasons with input as inp
	r == {"ip_not_allowed", "scope_missing", "service_not_bound"}
}

test_management_route_leaves_scopes_to_admin_policy if {
	inp := object.union(
		with_token({"scopes": ["tokens:request"], "services": ["tokengate-admin"]}),
		{"route": {"service": "tokengate-admin"}, "request": object.union(good_input.request, {"method": "POST"})},
	)
	allowed(inp)
}
