# Admin rules: limits on what a token may grant, whoever asks for it. They
# hold for every action that hands out a token: request, issue, approve
# (checked again when someone approves, in case the directory changed) and
# exchange (a workload's token exchange). Like admin_roles.rego they only
# add denials to admin.rego's decision. The directory they read is
# described at the top of admin_roles.rego.
#
# Rules and their reason codes:
#
#   developer_production_write  A person in the developers group does not
#       get a write or delete scope (any scope other than <service>:read) on
#       a production service: not as the caller (request, claim, exchange,
#       rotate), nor as the token's owner, requester or holder, whichever
#       credential they use. A person's identity-provider groups travel with
#       their credentials: recorded with each request they make
#       (input.request.requester_groups) and on each token they claim or
#       rotate (input.token.holder_groups, and input.actor.groups when they
#       call with that token), so approve and claim ask again with them.
#   step_up_required            Approving a write or delete scope on a
#       production service needs the approver's security key: a fresh
#       WebAuthn assertion bound to that very request, which the web
#       console asks for (input.actor.step_up). The API and the CLI cannot
#       give one, so such approvals are made in the console. A service's
#       directory entry with "step_up": false opts it out.
#   workload_scope_destructive  A workload never gets a :delete scope (nor
#       a <service>:* one).
#   workload_management_scope   A workload never gets a management token
#       (a tokens:* scope or the tokengate-admin service).
#   workload_ttl_exceeds_max    A workload's token lives at most 15 minutes;
#       an entry's max_ttl_seconds shortens it further (the decision's
#       ttl_seconds, which the exchange applies).
#   workload_one_service        A workload's token is bound to exactly one
#       service.
#   workload_not_in_directory   No entry of directory.workloads matches the
#       workload's issuer and claims: refused, fail closed.
#   workload_grant_exceeded     Entries match, but none grants every scope
#       and service asked for.
#   integration_one_service     A request whose owner is an external
#       integration (a key of directory.integrations) is bound to exactly
#       one service...
#   integration_service_not_allowed  ...and only to a service whose
#       directory entry lists the integration under "integrations".
#   too_many_services           A token lists more services than
#       directory.limits.max_services (default 3).
#   every_service               A token may not reach every service: a "*"
#       service or scope, or, when the directory lists more than one
#       service, a read (read or write scope, with the binding) on every
#       one of them.
#   ticket_required             A request with a write or delete scope on a
#       production service names a ticket (input.request.ticket), which
#       the approver sees; approval is refused without one too.
#
# directory.workloads entries:
#
#   {"name": "billing-deploy",              (for people; not matched)
#    "issuer": "github",                    the configured workload name
#    "claims": {"repository": "acme/billing", "ref": "refs/heads/main",
#               "environment": "production", "workflow": "deploy"},
#    "services": ["billing"],
#    "scopes": ["billing:write"],           write implies read
#    "max_ttl_seconds": 600}                optional: a shorter life than 900
#
# An entry matches a workload whose issuer name is the entry's and whose
# verified claims equal every claim the entry lists (exact values). An
# entry listing no claims matches nothing: it would admit every job of
# that issuer.
package tokengate.admin

# Actions that hand out a token.
granting_actions := {"request", "issue", "approve", "exchange"}

granting if input.action in granting_actions

# Scope parts: "billing:write" is service "billing", access "write".
scope_service(s) := substring(s, 0, indexof(s, ":")) if contains(s, ":")

else := s

scope_access(s) := substring(s, indexof(s, ":") + 1, -1) if contains(s, ":")

else := ""

changes_data(s) if scope_access(s) != "read"

# A write or delete scope (anything but read) on a production service.
production_write(r) if {
	some s in r.scopes
	changes_data(s)
	production(scope_service(s))
}

# Step-up: a production write is approved only with a security key.
denials contains "step_up_required" if {
	input.action == "approve"
	some s in input.request.scopes
	changes_data(s)
	svc := scope_service(s)
	production(svc)
	not service_step_up_off(svc)
	not input.actor.step_up == true
}

# service_step_up_off(svc): the directory's entry for svc says
# "step_up": false (exactly false: "no" or 0 opts nothing out).
service_step_up_off(svc) if {
	some name, info in directory_services
	lower(name) == lower(svc)
	is_object(info)
	object.get(info, "step_up", true) == false
}

# Developers and production.

# Whoever acts for themselves: asks, claims the secret, exchanges.
developer_involved if {
	input.action in {"request", "claim", "exchange"}
	"developers" in actor_groups
}

developer_involved if "developers" in recorded_groups(input.request.requester_groups)

developer_involved if {
	some who in request_people
	in_group(who, "developers")
}

request_people contains input.request.owner

request_people contains input.request.requested_by

request_people contains input.request.held_by

denials contains "developer_production_write" if {
	input.action in developer_checked_actions
	production_write(input.request)
	developer_involved
}

# Every step that moves a token towards someone's hands asks again, so a
# chain of steps taken with different credentials ends where one step
# would: refused.
developer_checked_actions := granting_actions | {"claim"}

# Rotation hands a new secret to the one who rotates: a developer does not
# renew a production write, whoever holds it and whenever it was granted.
denials contains "developer_production_write" if {
	input.action == "rotate"
	production_write(input.token)
	developer_holds_token
}

developer_holds_token if "developers" in actor_groups

developer_holds_token if "developers" in recorded_groups(input.token.holder_groups)

developer_holds_token if {
	some who in {input.token.owner, input.token.created_by, token_holder}
	in_group(who, "developers")
}

# recorded_groups(gs): identity-provider groups recorded on a request or a
# token, lower-cased; absent or malformed ones name no group.
recorded_groups(gs) := {lower(g) | some g in gs; is_string(g)} if is_array(gs)

else := set()

# Workloads.

workload_max_ttl_seconds := 900

exchange if input.action == "exchange"

denials contains "workload_scope_destructive" if {
	exchange
	some s in input.request.scopes
	scope_access(s) in {"delete", "*"}
}

denials contains "workload_management_scope" if {
	exchange
	some s in input.request.scopes
	scope_service(s) == "tokens"
}

denials contains "workload_management_scope" if {
	exchange
	management_service in input.request.services
}

denials contains "workload_ttl_exceeds_max" if {
	exchange
	input.request.ttl_seconds > workload_max_ttl_seconds
}

denials contains "workload_one_service" if {
	exchange
	count(input.request.services) != 1
}

denials contains "workload_not_in_directory" if {
	exchange
	count(matching_workloads) == 0
}

denials contains "workload_grant_exceeded" if {
	exchange
	count(matching_workloads) > 0
	not some_entry_grants
}

matching_workloads contains entry if {
	some entry in directory_workloads
	workload_matches(entry)
}

workload_matches(entry) if {
	is_object(entry)
	is_string(entry.issuer)
	lower(entry.issuer) == lower(input.actor.issuer)
	is_object(entry.claims)
	count(entry.claims) > 0
	every name, want in entry.claims { input.actor.claims[name] == want }
}

some_entry_grants if {
	some entry in matching_workloads
	entry_grants(entry, input.request)
}

entry_grants(entry, r) if {
	is_array(entry.scopes)
	is_array(entry.services)
	every s in r.scopes { entry_grants_scope(entry, s) }
	every svc in r.services { svc in entry.services }
}

# The exchanged token lives as long as the most generous entry that grants
# it allows (the decision's ttl_seconds): an entry's max_ttl_seconds
# shortens the token rather than refusing the exchange.
exchange_ttl_seconds := max({entry_max_ttl(entry) |
	some entry in matching_workloads
	entry_grants(entry, input.request)
}) if {
	exchange
	some_entry_grants
}

entry_grants_scope(entry, s) if s in entry.scopes

entry_grants_scope(entry, s) if {
	scope_access(s) == "read"
	concat(":", [scope_service(s), "write"]) in entry.scopes
}

entry_max_ttl(entry) := min([entry.max_ttl_seconds, workload_max_ttl_seconds]) if is_number(entry.max_ttl_seconds)

else := workload_max_ttl_seconds

# Rate limits.
#
# A workload's token always carries a rate limit: an exchanged one gets
# the matching directory entry's "rate_limit" ({"requests": N, "window":
# "1s"|"1m"|"1h"|"24h"}) or else workload_rate_limit, and a token asked
# for a workload by name must ask for one (rate_limit_required).

workload_rate_limit := {"requests": 600, "window": "1m"}

exchange_rate_limit := entry_rate_limits[_] if {
	exchange
	count(entry_rate_limits) == 1
} else := workload_rate_limit if exchange

# The limits the granting entries set; when several do, none of them is
# picked over the others and the shipped default applies.
entry_rate_limits contains entry.rate_limit if {
	some entry in matching_workloads
	entry_grants(entry, input.request)
	is_object(entry.rate_limit)
}

denials contains "rate_limit_required" if {
	input.action in {"request", "issue", "approve"}
	startswith(lower(input.request.owner), "workload:")
	not input.request.rate_limit
}

# External integrations.

integration(owner) if {
	some name, _ in directory_integrations
	same_principal(name, owner)
}

denials contains "integration_one_service" if {
	granting
	integration(input.request.owner)
	count(input.request.services) != 1
}

denials contains "integration_service_not_allowed" if {
	granting
	integration(input.request.owner)
	some svc in input.request.services
	not service_lists_integration(svc, input.request.owner)
}

service_lists_integration(svc, owner) if {
	info := directory_services[svc]
	is_object(info)
	some name in object.get(info, "integrations", [])
	is_string(name)
	same_principal(name, owner)
}

# How far one token reaches.

default_max_services := 3

max_services := n if {
	n := directory_limits.max_services
	is_number(n)
} else := default_max_services

denials contains "too_many_services" if {
	granting
	count(input.request.services) > max_services
}

denials contains "every_service" if {
	granting
	wildcard(input.request)
}

wildcard(r) if "*" in r.services

wildcard(r) if {
	some s in r.scopes
	"*" in {s, scope_service(s)}
}

denials contains "every_service" if {
	granting
	listed := {lower(name) | some name, _ in directory_services}
	count(listed) > 1
	every name in listed { reads_service(input.request, name) }
}

# reads_service(r, name): the token would be bound to the service and hold
# a scope that reads it (read, or write, which implies read).
reads_service(r, name) if {
	some svc in r.services
	lower(svc) == name
	some s in r.scopes
	lower(scope_service(s)) == name
	scope_access(s) in {"read", "write"}
}

# Tickets.

denials contains "ticket_required" if {
	input.action in {"request", "approve"}
	production_write(input.request)
	trim_space(object.get(input.request, "ticket", "")) == ""
}
