# The same decision as policies/gateway.rego, for an OPA server that Caddy's
# forward_auth asks: OPA's own API authorization (opa run --authorization=basic)
# evaluates data.system.authz.allow for every request it receives and answers
# 401 unless it is true, which is exactly the contract forward_auth needs.
#
# input.identity  the bearer token of the request (--authentication=token)
# input.headers   X-Forwarded-Method and X-Forwarded-For, set by forward_auth
# input.params    service=<name>, set in forward_auth's uri
# data.bench.tokens  tokens keyed by the hex SHA-256 of their secret
#                    (examples/bench/seed writes them)
package system.authz

default allow := false

tok := data.bench.tokens[crypto.sha256(input.identity)]

now := time.now_ns()

service := input.params.service[0]

method := upper(input.headers["X-Forwarded-Method"][0])

client_ip := trim_space(split(input.headers["X-Forwarded-For"][0], ",")[0])

allow if {
	tok.revoked_at == 0
	now >= tok.not_before
	now < tok.expires_at
	service in tok.services
	scope_granted
	ip_allowed
}

method_access := {"GET": "read", "HEAD": "read", "OPTIONS": "read", "DELETE": "delete"}

access := object.get(method_access, method, "write")

scope_granted if concat(":", [service, access]) in tok.scopes

scope_granted if {
	access == "read"
	concat(":", [service, "write"]) in tok.scopes
}

ip_allowed if count(tok.cidrs) == 0

ip_allowed if {
	some cidr in tok.cidrs
	net.cidr_contains(cidr, client_ip)
}
