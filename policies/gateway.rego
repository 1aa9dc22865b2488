# Gateway policy: decides what a live token may do on one call.
#
# The gateway has already refused tokens that are unknown, revoked, rotated
# after their grace, expired, not yet valid or used up: liveness is checked
# in Go before this policy runs, so no edit here can let such a token
# through. This policy decides permissions, and may only refuse more.
#
# The gateway reads four rules of this package:
#
#   reasons      set of reason codes. The call is allowed exactly when it
#                is empty: the engine derives allow, no rule can write it.
#                Every rule you add in the style of the ones below takes
#                effect, cached or not.
#   scope        (optional) the scope this call exercised; the hygiene
#                report uses it to find scopes granted but never needed.
#   ttl_seconds  (optional) how long the decision may be cached.
#   rate_limit   (optional) {"requests": N, "window": "1s"|"1m"|"1h"|"24h"}:
#                at most N such calls of the token per window; the
#                stricter of it and the token's own limit applies
#                (docs/rate-limits.md).
#
# Input (times are Unix nanoseconds; the compiler type-checks every
# reference against the input schema, so a misspelt field is an error):
#
#   input.token    {id, owner, purpose, scopes, services, cidrs, not_before,
#                   expires_at, max_uses, uses, rate_limit (only when the
#                   token has a limit of its own: {requests, window})}
#   input.request  {method, host, path, raw_path, remote_ip, headers}
#                  path is cleaned as Caddy's path matchers clean it (dot
#                  segments resolved, slashes merged); raw_path is what the
#                  client sent. headers holds only the headers the route
#                  lists in `policy_headers`, lower-cased.
#   input.route    {service}
#   input.now      evaluation time
#
# A decision is cached until the next moment the token's timestamps could
# change it. A rule that depends on anything else that changes with time
# (office hours, say) must set ttl_seconds.

# The input's JSON Schema (policies/schemas/gateway_input.json), so that
# `opa check --strict --schema policies/schemas policies/` refuses a
# misspelt input field as the gateway does.

# METADATA
# schemas:
#   - input: schema.gateway_input
package tokengate.gateway

reasons contains "service_not_bound" if not service_bound

reasons contains "scope_missing" if not scope_granted

reasons contains "ip_not_allowed" if not ip_ok

scope := required_scope

service_bound if input.route.service in input.token.services

# Safe methods (GET, HEAD, OPTIONS) need <service>:read; DELETE needs
# <service>:delete; POST, PUT, PATCH and any other method need
# <service>:write. A write scope also grants reads on the same service; a
# delete scope grants nothing else, so a token that may delete cannot read
# or change what it deletes unless it holds those scopes too.
#
# Methods are case-sensitive in HTTP, but some upstream frameworks
# upper-case them: a "delete" must need the delete scope, not pass as an
# unknown method under write.
method_access := {"GET": "read", "HEAD": "read", "OPTIONS": "read", "DELETE": "delete"}

access := object.get(method_access, upper(input.request.method), "write")

required_scope := concat(":", [input.route.service, access])

scope_granted if required_scope in input.token.scopes

scope_granted if {
	access == "read"
	concat(":", [input.route.service, "write"]) in input.token.scopes
}

# Management tokens (service tokengate-admin) carry tokens:* scopes, which
# admin.rego checks per action; here they need only be bound.
scope_granted if input.route.service == "tokengate-admin"

# A token without CIDRs may be used from anywhere.
ip_ok if count(input.token.cidrs) == 0

ip_ok if {
	some cidr in input.token.cidrs
	net.cidr_contains(cidr, input.request.remote_ip)
}
