# Grantline's shipped access policy: RBAC on bound roles and their targets, TTL caps,
# separation of duties, credential types and human-only roles (docs: CONTRACT.md).
#
# Allow by proof: `allow` holds only when every condition in its body is proven from the
# input and the configuration. `reasons` explain a denial; their absence proves nothing.
#
# - Configuration is read by name (data.grantline.roles, ...): reading data.grantline as a
#   whole from inside this package would depend on this package's own rules. For the same
#   reason no rule here may be named like a configuration key (roles, bindings, sod, groups).
# - Lookups go through data.grantline_index, which the engine derives from data.grantline
#   at load time, so a decision costs the same with ten bindings or ten thousand.
# - Glob subjects use "/" as the delimiter: "*" stays within one path segment, "**" spans
#   segments, so "spiffe://example.org/ns/batch/*" does not match ".../batch/x/y".
# - The policy never reads the clock (input.now is given) and never calls out.
# - rego-cpp 1.5 gets `not` wrong inside `every` and leaves concat's quotes unescaped inside
#   sprintf: neither construct is used here, and policies/tests holds a case for each.
package grantline

import rego.v1

default allow := false

allow if {
	subject_is_named
	is_object(role)
	subject_bound
	input.request.target in role.targets
	ttl_within_cap
	input.request.credential_type in credential_types
	active_grants_listed
	count(sod_conflicts) == 0
	agent_may_hold_role
}

decision := {
	"allow": true,
	"reasons": [],
	"require_approval": require_approval,
	"rule": "rbac",
} if {
	allow
} else := {
	"allow": false,
	"reasons": reasons,
	"require_approval": false,
	"rule": "deny",
}

# Proofs.

role := data.grantline.roles[input.request.role]

subject_is_named if {
	is_string(input.identity.subject)
	input.identity.subject != ""
}

subject_bound if input.request.role in data.grantline_index.bindings_by_subject[input.identity.subject]

subject_bound if {
	some binding in data.grantline_index.glob_bindings
	input.request.role in binding.roles
	is_string(input.identity.subject)
	glob.match(binding.subject, ["/"], input.identity.subject)
}

ttl_within_cap if {
	is_number(input.request.ttl_seconds)
	input.request.ttl_seconds >= 1
	input.request.ttl_seconds <= role.max_ttl_seconds
}

credential_types := object.get(role, "credential_types", ["jwt"])

# Every grant the broker lists counts as active, whatever its expires_at: expiry is the
# broker's business, and a stale grant here can only deny more, never allow more.
active_grants_listed if {
	is_array(input.active_grants)
	every grant in input.active_grants {
		is_string(grant.role)
	}
}

sod_conflicts contains grant.role if {
	some grant in input.active_grants
	grant.role in data.grantline_index.sod_conflicts[input.request.role]
}

# An `actor` key, whatever its value, means an agent acts on behalf of the subject.
agent_may_hold_role if not acting_agent

agent_may_hold_role if {
	acting_agent
	not human_only
}

acting_agent if {
	_ := input.actor
}

# Anything but an explicit false makes a role human-only.
human_only if role.human_only != false

default require_approval := false

require_approval if "approval" in object.keys(role)

# Reasons for a denial, evaluated only when allow does not hold.

reasons := sort(deny_reasons) if {
	count(deny_reasons) > 0
} else := ["no rule proved the request allowed"]

deny_reasons contains "identity.subject must be a non-empty string" if not subject_is_named

deny_reasons contains "request.role must be a non-empty string" if not role_is_named

deny_reasons contains sprintf("unknown role %s", [input.request.role]) if {
	role_is_named
	not is_object(role)
}

deny_reasons contains msg if {
	subject_is_named
	is_object(role)
	not subject_bound
	msg := sprintf("subject %s is not bound to role %s", [input.identity.subject, input.request.role])
}

deny_reasons contains "request.target must be a non-empty string" if not target_is_named

deny_reasons contains msg if {
	target_is_named
	is_object(role)
	not input.request.target in role.targets
	msg := sprintf("target %s is not allowed for role %s", [input.request.target, input.request.role])
}

deny_reasons contains "ttl_seconds must be a number" if not is_number(input.request.ttl_seconds)

deny_reasons contains sprintf("ttl_seconds %v is below the minimum of 1", [ttl]) if {
	ttl := input.request.ttl_seconds
	is_number(ttl)
	ttl < 1
}

deny_reasons contains msg if {
	ttl := input.request.ttl_seconds
	is_number(ttl)
	is_number(role.max_ttl_seconds)
	ttl > role.max_ttl_seconds
	msg := sprintf("ttl_seconds %v exceeds the cap of %v for %s", [ttl, role.max_ttl_seconds, input.request.role])
}

deny_reasons contains sprintf("role %s has no numeric max_ttl_seconds", [input.request.role]) if {
	is_object(role)
	not is_number(role.max_ttl_seconds)
}

deny_reasons contains "request.credential_type must be a string" if {
	not is_string(input.request.credential_type)
}

deny_reasons contains msg if {
	is_string(input.request.credential_type)
	is_object(role)
	not input.request.credential_type in credential_types
	msg := sprintf("credential_type %s is not allowed for role %s (allowed: %v)", [input.request.credential_type, input.request.role, credential_types])
}

deny_reasons contains "active_grants must be a list of grants, each with a string role" if {
	not active_grants_listed
}

deny_reasons contains msg if {
	some other in sod_conflicts
	msg := sprintf("separation of duties: %s conflicts with the active grant of %s", [input.request.role, other])
}

deny_reasons contains sprintf("role %s is human_only and cannot be granted to an agent", [input.request.role]) if {
	acting_agent
	human_only
}

role_is_named if {
	is_string(input.request.role)
	input.request.role != ""
}

target_is_named if {
	is_string(input.request.target)
	input.request.target != ""
}
