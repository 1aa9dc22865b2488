# Gateway policy: decides whether one call with one token may pass.
#
# The gateway evaluates data.tokengate.gateway.decision for every call whose
# decision is not in its cache. Input (all times are Unix nanoseconds, 0 when
# unset):
#
#   input.token    {id, owner, purpose, scopes, services, cidrs, not_before,
#                   expires_at, max_uses, uses, revoked_at, grace_until}
#   input.request  {method, host, path, remote_ip, headers}
#                  headers holds only the headers the route lists in
#                  `policy_headers`, lower-cased, because only those are part
#                  of the decision cache key.
#   input.route    {service}
#   input.now      evaluation time
#
# The decision is cached until the next moment the token's timestamps could
# change it (expiry, grace end, not_before). A rule that depends on anything
# else that changes with time (office hours, say) must set ttl_seconds.
package tokengate.gateway

# Fail closed: if a broken edit leaves decision undefined, nothing passes.
default decision := {"allow": false, "reasons": ["policy_undefined"]}

# scope names the scope this call exercised; the hygiene report uses it to
# find scopes that were granted but never needed.
#
# The first branch is a fast path for the common call: a plain token,
# used in time, on its service, with the exact scope, from an allowed
# address. It allows without evaluating every reason rule below, which
# halves the cost of an uncached call (BENCHMARKS.md). Anything it does
# not recognise falls through to the full evaluation, so it may only ever
# be stricter than `reasons`: when you add a reason, make sure the fast
# path cannot pass that case (add a condition, or leave it alone if it
# already requires something your reason contradicts). Two tests guard
# this: every reason's test checks the decision denies, and
# policies_test.go compares the fast path against `reasons` over a grid of
# several thousand inputs.
decision := {"allow": true, "reasons": [], "scope": required_scope} if {
	input.token.revoked_at == 0
	input.token.grace_until == 0
	input.token.not_before <= input.now
	input.now < input.token.expires_at
	input.token.max_uses == 0
	input.route.service in input.token.services
	required_scope in input.token.scopes
	ip_ok
} else := {"allow": count(reasons) == 0, "reasons": sort(reasons), "scope": required_scope}

# Reason codes. Codes starting with token_ or uses_ answer 401 (the token
# itself is no good); every other code answers 403 (a good token, used where
# it may not be).

reasons contains "token_unknown" if not input.token

reasons contains "token_revoked" if input.token.revoked_at > 0

# After a rotation the old secret keeps working until grace_until, so
# clients can switch without downtime; after that it is refused.
reasons contains "token_rotated" if {
	input.token.grace_until > 0
	input.now >= input.token.grace_until
}

reasons contains "token_expired" if input.now >= input.token.expires_at

reasons contains "token_not_yet_valid" if input.now < input.token.not_before

reasons contains "uses_exhausted" if {
	input.token.max_uses > 0
	input.token.uses >= input.token.max_uses
}

reasons contains "service_not_bound" if not service_bound

service_bound if input.route.service in input.token.services

reasons contains "scope_missing" if not scope_granted

reasons contains "ip_not_allowed" if {
	count(input.token.cidrs) > 0
	not ip_ok
}

# Safe methods (GET, HEAD, OPTIONS) need <service>:read; every other
# method needs <service>:write. A write scope also grants reads on the
# same service. (The set is written inline: a separate rule for it cost
# 10% of an uncached call.)
access := "read" if input.request.method in {"GET", "HEAD", "OPTIONS"}

else := "write"

required_scope := concat(":", [input.route.service, access])

scope_granted if required_scope in input.token.scopes

scope_granted if {
	access == "read"
	concat(":", [input.route.service, "write"]) in input.token.scopes
}

# Management tokens (service tokengate-admin) carry tokens:* scopes, which
# admin.rego checks per action; here they need only be valid and bound.
scope_granted if input.route.service == "tokengate-admin"

# A token without CIDRs may be used from anywhere.
ip_ok if count(input.token.cidrs) == 0

ip_ok if {
	some cidr in input.token.cidrs
	net.cidr_contains(cidr, input.request.remote_ip)
}
