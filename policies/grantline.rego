# Grantline's shipped access policy: RBAC on bound roles and their targets, TTL caps,
# separation of duties, credential types and human-only roles (docs: CONTRACT.md).
#
# Allow by proof: `allow` holds only when every condition in its body is proven from the
# input and the configuration. `reasons` explain a denial; their absence proves nothing.
#
# - The configuration (data.grantline.roles, .bindings, .sod) is read through
#   data.grantline_index, which the engine derives from it at load time. Nothing here reads
#   data.grantline as a whole, which from inside this package would depend on its own rules;
#   for the same reason no rule is named like a configuration key (roles, bindings, sod).
# - rego-cpp finds an object key by scanning, so each index table is a hash table: `cell`
#   says which small object a key lives in (grantline.policy.index), and a decision costs
#   about the same with ten bindings or thousands.
# - Glob subjects use "/" as the delimiter: "*" stays within one path segment, "**" spans
#   segments, so "spiffe://example.org/ns/batch/*" does not match ".../batch/x/y".
# - The policy never reads the clock (input.now is given) and never calls out.
# - rego-cpp 1.5 gets `not` wrong inside `every`, `%` wrong on integers, and leaves concat's
#   quotes unescaped inside sprintf: none of these is used here.
package grantline

import rego.v1

default allow := false

# One proof per line, inline rather than in helper rules: each rule costs rego-cpp about
# ten microseconds, and this body runs on every request.
allow if {
	is_string(input.identity.subject)
	input.identity.subject != ""
	is_object(requested_role)
	subject_bound
	input.request.target in requested_role.targets
	is_number(input.request.ttl_seconds)
	input.request.ttl_seconds >= 1
	input.request.ttl_seconds <= requested_role.max_ttl_seconds
	input.request.credential_type in object.get(requested_role, "credential_types", ["jwt"])
	is_array(input.active_grants)
	every grant in input.active_grants {
		is_string(grant.role)
	}
	count(sod_conflicts) == 0
	not agent_asks_for_human_only_role
}

decision := {
	"allow": true,
	"reasons": [],
	"require_approval": "approval" in object.keys(requested_role),
	"rule": "rbac",
} if {
	allow
} else := {
	"allow": false,
	"reasons": reasons,
	"require_approval": false,
	"rule": "deny",
}

requested_role := data.grantline_index.roles[role_cell[0]][role_cell[1]][input.request.role]

# `else`: rego-cpp evaluates every body of a rule, and the glob list is the costly one.
subject_bound if {
	bound := data.grantline_index.bindings_by_subject[subject_cell[0]][subject_cell[1]]
	input.request.role in bound[input.identity.subject]
} else := true if {
	is_string(input.identity.subject)
	some pattern in data.grantline_index.glob_bindings[role_cell[0]][role_cell[1]][input.request.role]
	glob.match(pattern, ["/"], input.identity.subject)
}

# Every grant the broker lists counts as active, whatever its expires_at: expiry is the
# broker's business, and a stale grant here can only deny more, never allow more.
sod_conflicts contains grant.role if {
	some grant in input.active_grants
	grant.role in data.grantline_index.sod_conflicts[role_cell[0]][role_cell[1]][input.request.role]
}

# An `actor` key, whatever its value, means an agent acts on behalf of the subject; any
# human_only value but an explicit false makes the role human-only.
agent_asks_for_human_only_role if {
	_ := input.actor
	requested_role.human_only != false
}

role_cell := cell(input.request.role)

subject_cell := cell(input.identity.subject)

# Where a string key lives in an index table: at the values of the first two hex digits of
# its SHA-256 (grantline.policy.index). Undefined for anything but a string.
cell(key) := [indexof(_hex, substring(h, 0, 1)), indexof(_hex, substring(h, 1, 1))] if {
	is_string(key)
	h := crypto.sha256(key)
}

_hex := "0123456789abcdef"

# Reasons for a denial, evaluated only when allow does not hold. They restate the proofs of
# allow one by one; allow alone decides, so a reason missing here can never allow.

reasons := sort(deny_reasons) if {
	count(deny_reasons) > 0
} else := ["no rule proved the request allowed"]

deny_reasons contains "identity.subject must be a non-empty string" if not subject_is_named

deny_reasons contains "request.role must be a non-empty string" if not role_is_named

deny_reasons contains sprintf("unknown role %s", [input.request.role]) if {
	role_is_named
	not is_object(requested_role)
}

deny_reasons contains msg if {
	subject_is_named
	is_object(requested_role)
	not subject_bound
	msg := sprintf("subject %s is not bound to role %s", [input.identity.subject, input.request.role])
}

deny_reasons contains "request.target must be a non-empty string" if not target_is_named

deny_reasons contains msg if {
	target_is_named
	is_object(requested_role)
	not input.request.target in requested_role.targets
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
	cap := requested_role.max_ttl_seconds
	is_number(ttl)
	is_number(cap)
	ttl > cap
	msg := sprintf("ttl_seconds %v exceeds the cap of %v for %s", [ttl, cap, input.request.role])
}

deny_reasons contains sprintf("role %s has no numeric max_ttl_seconds", [input.request.role]) if {
	is_object(requested_role)
	not is_number(requested_role.max_ttl_seconds)
}

deny_reasons contains "request.credential_type must be a string" if {
	not is_string(input.request.credential_type)
}

deny_reasons contains msg if {
	is_string(input.request.credential_type)
	is_object(requested_role)
	allowed := object.get(requested_role, "credential_types", ["jwt"])
	not input.request.credential_type in allowed
	msg := sprintf(
		"credential_type %s is not allowed for role %s (allowed: %v)",
		[input.request.credential_type, input.request.role, allowed],
	)
}

deny_reasons contains "active_grants must be a list of grants, each with a string role" if {
	not active_grants_listed
}

deny_reasons contains msg if {
	some other in sod_conflicts
	msg := sprintf("separation of duties: %s conflicts with the active grant of %s", [input.request.role, other])
}

deny_reasons contains sprintf("role %s is human_only and cannot be granted to an agent", [input.request.role]) if {
	agent_asks_for_human_only_role
}

subject_is_named if {
	is_string(input.identity.subject)
	input.identity.subject != ""
}

role_is_named if {
	is_string(input.request.role)
	input.request.role != ""
}

target_is_named if {
	is_string(input.request.target)
	input.request.target != ""
}

active_grants_listed if {
	is_array(input.active_grants)
	every grant in input.active_grants {
		is_string(grant.role)
	}
}
