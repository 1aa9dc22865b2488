# Admin policy: who may do what with tokens. The management API and the
# local operator's admin endpoint ask data.tokengate.admin.decision before
# every action; Go code holds no rule of its own about who may act.
#
# Input:
#   input.action   request | approve | deny | claim | issue | rotate |
#                  revoke | read | bootstrap | exchange (a workload's
#                  token exchange; input.request is the token it gets) |
#                  report_leak (POST /v1/leaks: secrets found in the wild,
#                  each revoked when it is ours and live)
#   input.actor    {principal, kind, token_id, scopes, local, ...}
#                  principal is verified, never typed: who holds the
#                  caller's management token (its held_by), a person's or
#                  workload's verified identity, or "local-operator"
#                  (local = true) on Caddy's admin endpoint. Separation of
#                  duties compares principals, so a second token of the
#                  same person is the same person.
#   input.request  the token asked for (request, approve, deny, claim,
#                  issue): {id, owner, purpose, scopes, services, cidrs,
#                  ttl_seconds, max_uses, rate_limit (when one is asked:
#                  {requests, window}), requested_by, held_by, ticket};
#                  held_by is who will hold the secret (the requester)
#   input.token    the existing token acted on (rotate, revoke, read):
#                  {id, owner, created_by, held_by, scopes, services,
#                  cidrs, lifetime_seconds}
#   input.bootstrap  {requester, approver} for bootstrap
#   input.config   {max_ttl_seconds}
#
# An owner is only a name typed into a request: no rule here trusts it.
# Rules compare the verified principal with who holds a secret (held_by)
# and who asked for it (requested_by, created_by).
#
# Decision: {"allow", "reasons", "auto_approve", "person_needed",
# "approvers", "ttl_seconds", "rate_limit"}. auto_approve (request only)
# issues the token at once, without a second person; person_needed
# (request only) says which rules of that just-in-time approval the
# request misses, so the approver sees why they were asked (empty when
# auto_approve holds); approvers (when a request is in the input) names
# the directory's approvers other than its requester, for the console's
# "who else may approve"; ttl_seconds (exchange only; 0 otherwise) bounds
# the exchanged token's life; rate_limit (exchange only; {} otherwise) is
# the exchanged token's rate limit.
#
# Roles by kind and groups, the directory (data.tokengate.directory) and
# the shipped limits on what a token may grant are in admin_roles.rego and
# admin_rules.rego, in this same package.

# The input's JSON Schema (policies/schemas/admin_input.json), so that
# `opa check --strict --schema policies/schemas policies/` refuses a
# misspelt input field as the gateway does.

# METADATA
# schemas:
#   - input: schema.admin_input
package tokengate.admin

# Fail closed when a broken edit leaves the decision undefined.
default decision := {"allow": false, "reasons": ["policy_undefined"], "auto_approve": false}

decision := {
	"allow": count(denials) == 0,
	"reasons": sort(denials),
	"auto_approve": auto_approve,
	"person_needed": person_needed_unless_auto,
	"approvers": approvers_listed,
	"ttl_seconds": exchange_ttl_seconds,
	"rate_limit": exchange_rate_limit,
}

# person_needed and eligible_approvers are rules of admin_roles.rego; read
# through data, so that an admin.rego used without that file (an
# operator's own roles) still compiles, and says nothing.
default person_needed_unless_auto := []

person_needed_unless_auto := sort(data.tokengate.admin.person_needed) if not auto_approve

default approvers_listed := []

approvers_listed := sort(data.tokengate.admin.eligible_approvers)

# Exchange only: the longest life granted to a workload's token, set by
# admin_rules.rego from the directory entry; 0 adds no bound to the
# 15 minutes the exchange never exceeds.
default exchange_ttl_seconds := 0

# Exchange only: the rate limit of a workload's token, set by
# admin_rules.rego; {} gives it none.
default exchange_rate_limit := {}

management_service := "tokengate-admin"

# The two duties no single token may hold together.
duties := {"tokens:request", "tokens:approve"}

required_scope := {
	"request": "tokens:request",
	"claim": "tokens:request",
	"approve": "tokens:approve",
	"deny": "tokens:approve",
	"read": "tokens:read",
	# Who may revoke any token may report leaked secrets, which revokes
	# them.
	"report_leak": "tokens:revoke",
}

has(scope) if scope in input.actor.scopes

# Fail closed on anything unexpected: an unknown action or no caller.
actions := {"request", "approve", "deny", "claim", "issue", "rotate", "revoke", "read", "bootstrap", "exchange", "report_leak"}

denials contains "action_unknown" if not known_action

known_action if input.action in actions

# An empty or blank principal is no one: it would equal the empty holder
# or creator of a record and pass the rules that compare them.
denials contains "actor_missing" if not input.actor.principal

denials contains "actor_missing" if trim_space(input.actor.principal) == ""

# Names are compared in lower case where telling two people apart matters
# (approving, bootstrapping, a management token's owner): "Alice" and
# "alice" are the same person, and the rule refuses. Where a rule grants
# something to the one who holds a secret or asked for it (claim, rotate,
# revoke), the principal must match exactly, so a case variant of a name
# gains nothing either way.
same_person(a, b) if lower(a) == lower(b)

# Who holds the token acted on. For a token stored before holders were
# recorded, Go supplies who received its secret (its creator, or for a
# bootstrap token the person named); should held_by still be empty, the
# creator stands in, never the owner.
token_holder := input.token.held_by if input.token.held_by != ""

else := input.token.created_by

# Who will hold the secret of the token asked for: the requester.
request_holder := input.request.held_by if input.request.held_by != ""

else := input.request.requested_by

# The local operator's name is reserved for Caddy's admin endpoint: no
# management token, person or workload may act under it (it holds every
# token the operator issued), and bootstrap gives it to nobody.
reserved_principal := "local-operator"

denials contains "principal_reserved" if {
	not input.actor.local
	same_person(input.actor.principal, reserved_principal)
}

denials contains "principal_reserved" if {
	input.action == "bootstrap"
	some name in [input.bootstrap.requester, input.bootstrap.approver]
	same_person(name, reserved_principal)
}

# "workload:" starts the names of workloads (manage.WorkloadPrincipal):
# a person or a management token's holder whose name took that form could
# rotate or revoke a workload's tokens as their holder.
denials contains "principal_reserved" if {
	not input.actor.kind == "workload"
	startswith(lower(input.actor.principal), "workload:")
}

denials contains "principal_reserved" if {
	input.action == "bootstrap"
	some name in [input.bootstrap.requester, input.bootstrap.approver]
	startswith(lower(name), "workload:")
}

# Callers of the management API need the scope of the action. The local
# operator has no token; its bounds are below.
denials contains "scope_missing" if {
	not input.actor.local
	not input.actor.kind == "person" # people act by role (admin_roles.rego)
	required := required_scope[input.action]
	not has(required)
}

# Holders of tokens:revoke may revoke any token; the one who holds a
# token and the one who asked for it may revoke it (its owner, a typed
# name, may not); the local operator may always revoke (stopping harm is
# never blocked).
denials contains "not_owner" if {
	input.action == "revoke"
	not input.actor.local
	not has("tokens:revoke")
	not input.actor.principal in {token_holder, input.token.created_by}
}

# Rotation hands out a new secret, so only the one who holds the token may
# rotate: neither its owner nor whoever asked for it before someone else
# took it over.
denials contains "not_owner" if {
	input.action == "rotate"
	not input.actor.local
	not holds_token
}

holds_token if input.actor.principal == token_holder

# Separation of duties.

denials contains "self_approval" if {
	input.action == "approve"
	some who in [input.request.requested_by, request_holder]
	same_person(who, input.actor.principal)
}

denials contains "self_approval" if {
	input.action == "bootstrap"
	same_person(input.bootstrap.requester, input.bootstrap.approver)
}

# The approver never sees the secret: only the requester, who will hold
# it, may claim it.
denials contains "not_requester" if {
	input.action == "claim"
	not requested_it
}

requested_it if {
	input.actor.principal == input.request.requested_by
	input.actor.principal == request_holder
}

# A management token is personal: its owner is the person who will hold
# it. Otherwise a token named after someone else would read, in the
# inventory and to an approver, as that person's.
denials contains "management_token_not_personal" if {
	input.action in {"request", "approve", "claim", "issue", "exchange"}
	management_service in input.request.services
	not same_person(input.request.owner, request_holder)
}

# No token may be asked for, issued or approved holding both duties...
denials contains "duties_combined" if {
	input.action in {"request", "issue", "approve"}
	every d in duties { d in input.request.scopes }
}

# ...and a caller whose token somehow holds both is refused outright.
denials contains "duties_combined" if {
	not input.actor.local
	every d in duties { has(d) }
}

# What may be asked for.

denials contains "purpose_required" if {
	input.action in {"request", "issue"}
	trim_space(input.request.purpose) == ""
}

denials contains "ttl_exceeds_max" if {
	input.action in {"request", "issue", "approve"}
	input.request.ttl_seconds > input.config.max_ttl_seconds
}

# Management tokens come only from bootstrap or the two-person flow.
denials contains "management_token_needs_approval" if {
	input.action == "issue"
	management_service in input.request.services
}

# The local operator (whoever reaches Caddy's admin endpoint) may issue
# and rotate only what just-in-time access would grant anyway: read-only
# tokens living at most an hour.
jit_max_seconds := 3600

denials contains "local_operator_bounds" if {
	input.action == "issue"
	not within_jit_bounds(input.request.scopes, input.request.ttl_seconds)
}

denials contains "local_operator_bounds" if {
	input.action == "rotate"
	input.actor.local
	not within_jit_bounds(input.token.scopes, input.token.lifetime_seconds)
}

within_jit_bounds(scopes, seconds) if {
	read_only(scopes)
	seconds <= jit_max_seconds
}

read_only(scopes) if every s in scopes { endswith(s, ":read") }

# Just in time: a read-only, short-lived, bound request needs no second
# person when the directory vouches for it. The rule that grants it,
# auto_approve, is in admin_roles.rego, next to the directory it reads;
# without it nothing is approved automatically. Anything else (a write
# scope, a longer life, no binding, a management token, a production
# service or a principal the directory does not know) waits for approval.
#
# Bound means limited for real. Every CIDR must be no wider than /8 for
# IPv4 (10.0.0.0/8, the largest range one organisation routes) or /32 for
# IPv6 (one registry allocation): 0.0.0.0/0 and ::/0 bind nothing, and one
# wide range among narrow ones opens the token as much as the wide range
# alone. A use limit binds when it is 1 to 1000 calls. The hygiene report
# applies the same limits (internal/binding). CIDRs arrive as tokengate
# stores them: masked, and an IPv4-mapped range (::ffff:0.0.0.0/96) as the
# IPv4 range it matches, so the prefix length after the slash is the width.
default auto_approve := false

min_ipv4_prefix := 8

min_ipv6_prefix := 32

max_binding_uses := 1000

bound(r) if {
	count(r.cidrs) > 0
	every c in r.cidrs { binding_cidr(c) }
}

bound(r) if {
	r.max_uses >= 1
	r.max_uses <= max_binding_uses
}

binding_cidr(c) if {
	net.cidr_is_valid(c)
	[addr, bits] := split(c, "/")
	not contains(addr, ":")
	to_number(bits) >= min_ipv4_prefix
}

# An IPv6 address written with a dot is IPv4-mapped; stored CIDRs never
# take that form, so one that does is not trusted as a binding.
binding_cidr(c) if {
	net.cidr_is_valid(c)
	[addr, bits] := split(c, "/")
	contains(addr, ":")
	not contains(addr, ".")
	to_number(bits) >= min_ipv6_prefix
}
