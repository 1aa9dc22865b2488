# Admin roles: what a caller may do follows from what kind of caller it is
# and which groups it belongs to, not only from a management token's scopes.
# These rules add to the denials of admin.rego (same package); they never
# allow what admin.rego refuses.
#
# Kinds (input.actor.kind; a caller without one is the local operator when
# input.actor.local is true, otherwise a management token, as the Go side
# defaults it):
#
#   person            signed in with the oidc issuer. Needs no management
#                     scope: may request (for themselves: the request is
#                     recorded as theirs and they alone may claim it),
#                     claim, read, and rotate or revoke what admin.rego lets
#                     owners rotate or revoke. May approve or deny only as a
#                     member of the approvers group.
#   workload          a CI job that exchanged its OIDC token: action
#                     exchange only (rules in admin_rules.rego).
#   management_token  a tokengate management token: the scopes admin.rego
#                     asks for; never exchange.
#   local             Caddy's admin endpoint: admin.rego's bounds; never
#                     exchange.
#
# Groups: a principal belongs to a group when the directory lists it there
# (data.tokengate.directory.groups.<group>, a list of principals), or, for
# a person, when the identity provider's groups claim (input.actor.groups)
# names the group. Principals and group names compare case-insensitively.
#
# Approvers: approving or denying a sensitive request (any scope other than
# <service>:read, so every :write and :delete scope; any service the
# directory marks "environment": "production"; or a management token)
# needs a member of approvers. While the directory defines no approvers
# group at all (no "approvers" key), holders of a tokens:approve
# management token are the approvers, so an install that only ran
# bootstrap keeps working. An approvers key that is present, even an empty
# list, defines the group: then a tokens:approve scope alone no longer
# approves a sensitive request.
#
# The directory (all keys optional; the shipped default is
# tokengate/directory/data.json):
#
#   {"groups":       {"approvers": ["alice"], "developers": ["dave"]},
#    "services":     {"billing": {"environment": "production",
#                                 "integrations": ["acme-crm"]}},
#    "integrations": {"acme-crm": {}},
#    "workloads":    [ ...see admin_rules.rego... ],
#    "limits":       {"max_services": 3}}
#
# Reason codes: actor_kind_not_allowed, request_not_for_self,
# approver_required, directory_invalid.
package tokengate.admin

# The directory as loaded from policy data; an install without one has an
# empty directory.
default directory := {}

directory := data.tokengate.directory

directory_part(key, empty) := object.get(directory, key, empty) if is_object(directory)

else := empty

directory_groups := directory_part("groups", {})

directory_services := directory_part("services", {})

directory_integrations := directory_part("integrations", {})

directory_workloads := directory_part("workloads", [])

directory_limits := directory_part("limits", {})

# A directory of the wrong shape fails closed for every action but revoke
# and report_leak (stopping harm is never blocked), rather than being read
# as "no approvers" and handing approval to scope holders.
denials contains "directory_invalid" if {
	not input.action in {"revoke", "report_leak"}
	not directory_well_formed
}

directory_well_formed if {
	is_object(directory)
	is_object(directory_groups)
	every _, members in directory_groups { principal_list(members) }
	is_object(directory_services)
	every _, info in directory_services { is_object(info) }
	is_object(directory_integrations)
	is_array(directory_workloads)
	every entry in directory_workloads { workload_ttl_well_formed(entry) }
	is_object(directory_limits)
}

# An entry's max_ttl_seconds, when given, is a positive number: 0 would
# read as "no bound" where the exchange applies it, the longest life
# instead of the shortest.
workload_ttl_well_formed(entry) if not "max_ttl_seconds" in object.keys(entry)

workload_ttl_well_formed(entry) if {
	is_number(entry.max_ttl_seconds)
	entry.max_ttl_seconds > 0
}

principal_list(xs) if {
	is_array(xs)
	every x in xs { is_string(x) }
}

# The kind of caller, defaulted as the Go side defaults it.
actor_kind := k if k := input.actor.kind

else := "local" if input.actor.local

else := "management_token"

person if actor_kind == "person"

# What each kind may do; a kind not listed here may do nothing.
kind_actions := {
	# A person who holds a leaked secret could use it: reporting it
	# (which revokes it) gives them nothing more.
	"person": {"request", "claim", "read", "approve", "deny", "rotate", "revoke", "report_leak"},
	"workload": {"exchange"},
	"management_token": actions - {"exchange"},
	"local": actions - {"exchange"},
}

denials contains "actor_kind_not_allowed" if not input.action in object.get(kind_actions, actor_kind, set())

# Principals compare case-insensitively.
same_principal(a, b) if lower(a) == lower(b)

# in_group(name, group): the directory lists name in group.
in_group(name, group) if {
	some key, members in directory_groups
	lower(key) == group
	is_array(members)
	some m in members
	is_string(m)
	same_principal(m, name)
}

# The caller's groups, lower-cased: the directory's, and a person's IdP
# groups.
actor_groups contains lower(key) if {
	some key, _ in directory_groups
	in_group(input.actor.principal, lower(key))
}

actor_groups contains g if some g in idp_groups

# The groups the identity provider gave the caller, lower-cased: a
# person's at this sign-in; for a management token, its holder's when
# they claimed it (Go fills input.actor.groups from the token record, so
# the rules about a person follow every credential the person holds).
idp_groups contains lower(g) if {
	actor_kind in {"person", "management_token"}
	some g in input.actor.groups
	is_string(g)
}

# Just in time (admin.rego): a read-only, short-lived, bound request is
# approved by the policy itself, with nobody else looking, so only what
# the directory vouches for: every service is one whose entry says
# "auto_approve": true (production or not), or is not production and is
# asked for by a principal the directory knows.
auto_approve if {
	input.action == "request"
	count(denials) == 0
	within_jit_bounds(input.request.scopes, input.request.ttl_seconds)
	bound(input.request)
	not management_service in input.request.services
	every svc in input.request.services { auto_approvable(svc) }
}

auto_approvable(svc) if service_auto_approves(svc)

# Why a request waits for a second person: one code for each rule of
# just-in-time approval it misses. The console shows them to the
# approver; they decide nothing (auto_approve does).
person_needed contains "write_scope" if {
	input.action == "request"
	not read_only(input.request.scopes)
}

person_needed contains "ttl_over_jit" if {
	input.action == "request"
	input.request.ttl_seconds > jit_max_seconds
}

person_needed contains "unbound" if {
	input.action == "request"
	not bound(input.request)
}

person_needed contains "management_token" if {
	input.action == "request"
	management_service in input.request.services
}

person_needed contains "production_service" if {
	input.action == "request"
	some svc in input.request.services
	production(svc)
	not service_auto_approves(svc)
}

person_needed contains "requester_unknown" if {
	input.action == "request"
	some svc in input.request.services
	not production(svc)
	not service_auto_approves(svc)
	not directory_knows_actor
}

auto_approvable(svc) if {
	not production(svc)
	directory_knows_actor
}

# The directory knows the caller when it lists them in a group, or when a
# group the caller's identity provider names is one the directory defines
# (a key of directory.groups, even with no members listed).
directory_knows_actor if {
	some key, _ in directory_groups
	in_group(input.actor.principal, lower(key))
}

directory_knows_actor if {
	some key, _ in directory_groups
	lower(key) in idp_groups
}

# service_auto_approves(svc): the directory's entry for svc says
# "auto_approve": true (exactly true: "yes" or 1 opts nothing in).
service_auto_approves(svc) if {
	some name, info in directory_services
	lower(name) == lower(svc)
	is_object(info)
	object.get(info, "auto_approve", false) == true
}

# The directory's approvers who could decide the request in the input:
# its approvers group, the requester left out. People whose identity
# provider names them approvers may decide too; the directory cannot list
# them.
eligible_approvers contains lower(p) if {
	input.request
	some key, members in directory_groups
	lower(key) == "approvers"
	is_array(members)
	some p in members
	is_string(p)
	not same_principal(p, input.request.requested_by)
}

approvers_defined if {
	some key, _ in directory_groups
	lower(key) == "approvers"
}

is_approver if "approvers" in actor_groups

is_approver if {
	not approvers_defined
	actor_kind == "management_token"
	has("tokens:approve")
}

# A person asks for themselves: the request is recorded under their own
# verified name and its secret goes to them.
denials contains "request_not_for_self" if {
	input.action == "request"
	person
	not same_principal(input.request.requested_by, input.actor.principal)
}

denials contains "request_not_for_self" if {
	input.action == "request"
	person
	input.request.held_by != ""
	not same_principal(input.request.held_by, input.actor.principal)
}

# Sensitive requests need an approver to approve or deny them; people
# approve or deny only as approvers, whatever the request.
denials contains "approver_required" if {
	input.action in {"approve", "deny"}
	sensitive(input.request)
	not is_approver
	not lacks_approve_scope
}

# A management token without tokens:approve is refused as scope_missing;
# approver_required would only repeat it.
lacks_approve_scope if {
	actor_kind == "management_token"
	not has("tokens:approve")
}

denials contains "approver_required" if {
	input.action in {"approve", "deny"}
	person
	not is_approver
}

sensitive(r) if not read_only(r.scopes)

sensitive(r) if {
	some svc in r.services
	production(svc)
}

sensitive(r) if management_service in r.services

# production(svc): the directory marks the service production. Service
# names compare case-insensitively here, so a differently cased name
# cannot slip past a production mark.
production(svc) if {
	some name, info in directory_services
	lower(name) == lower(svc)
	is_object(info)
	env := object.get(info, "environment", "")
	is_string(env)
	lower(env) == "production"
}

# "*" stands for every service, production ones included.
production("*")
