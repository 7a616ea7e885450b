# Grantline's shipped access policy: RBAC on bound roles and their targets, TTL caps,
# separation of duties, credential types, human-only roles, agents acting for a principal,
# approvals and break-glass (docs: CONTRACT.md, docs/policy.md).
#
# Two entrypoints. `decision` answers an access request: allowed, allowed once approved
# (with the approval factors), allowed at once by break-glass, or denied. `approval`
# answers whether one approver may approve one pending request, and for which of its
# required groups; the broker counts the approvals (docs/policy.md).
#
# Allow by proof: `allow` and `approval_allowed` hold only when every condition in their
# bodies is proven from the input and the configuration. Reasons explain a denial; their
# absence proves nothing.
#
# - The configuration (data.grantline.roles, .bindings, .sod, .groups) is read through
#   data.grantline_index, which the engine derives from it at load time. Nothing here reads
#   data.grantline as a whole, which from inside this package would depend on its own rules;
#   for the same reason no rule is named like a configuration key (roles, bindings, sod,
#   groups).
# - rego-cpp finds an object key by scanning, so each index table is a hash table: `cell`
#   says which small object a key lives in (grantline.policy.index), and a decision costs
#   about the same with ten bindings or thousands.
# - Glob subjects use "/" as the delimiter: "*" stays within one path segment, "**" spans
#   segments, so "spiffe://example.org/ns/batch/*" does not match ".../batch/x/y".
# - rego-cpp's cost per query grows with the size of the whole policy, rules the query never
#   reaches included: the approval rules are written for few statements, and what only
#   agents or break-glass requests need sits behind a test that fails at once for the rest.
# - The policy never reads the clock (input.now is given) and never calls out.
# - rego-cpp 1.5 gets `not` wrong inside `every`, `%` wrong on integers, and leaves concat's
#   quotes unescaped inside sprintf: none of these is used here (messages that join a list
#   are built with concat alone).
package grantline

import rego.v1

default allow := false

# One proof per line, inline rather than in helper rules: each rule costs rego-cpp about
# ten microseconds, and this body runs on every request. The role's TTL cap holds for
# break-glass too (its own cap is no higher, grantline.policy.index checks).
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
	not refused
}

# `else` takes the first branch that holds, and each opens with `allow`. The plain grant
# comes first, as the common case (rego-cpp pays for each branch it tries). A role with an
# approval block waits for its approvals; a break-glass request, which allow proved through
# `refused`, skips them.
decision := {
	"allow": true,
	"reasons": [],
	"require_approval": false,
	"rule": "rbac",
	"max_ttl_seconds": requested_role.max_ttl_seconds,
	"conflicts_with": conflicts_with,
} if {
	allow
	not input.request.break_glass
	not requested_role.approval
} else := {
	"allow": true,
	"reasons": [],
	"require_approval": true,
	"rule": "approval",
	"approval": {"all_of": approval_factors},
	"max_ttl_seconds": requested_role.max_ttl_seconds,
	"conflicts_with": conflicts_with,
} if {
	allow
	not input.request.break_glass
	is_object(requested_role.approval)
} else := {
	"allow": true,
	"reasons": [],
	"require_approval": false,
	"rule": "break_glass",
	"break_glass": true,
	"max_ttl_seconds": requested_role.break_glass.max_ttl_seconds,
	"conflicts_with": conflicts_with,
} if {
	allow
	input.request.break_glass == true
} else := {
	"allow": false,
	"reasons": reasons,
	"require_approval": false,
	"rule": "deny",
	"max_ttl_seconds": ttl_cap,
} if {
	is_number(ttl_cap)
} else := {
	"allow": false,
	"reasons": reasons,
	"require_approval": false,
	"rule": "deny",
}

# The TTL cap that held for the request, recorded with the decision (the evidence report
# draws requested TTLs against it): the break-glass cap for a break-glass request to a role
# that has one, else the role's. Undefined for an unknown role.
ttl_cap := requested_role.break_glass.max_ttl_seconds if {
	input.request.break_glass == true
} else := requested_role.max_ttl_seconds

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

# The roles separation of duties keeps apart from the requested one, named by every allowing
# decision: the broker issues only if the subject holds none of them when the grant is
# written, checked in the same atomic step (the active grants this decision read may be
# stale by then, another replica issuing meanwhile).
conflicts_with := held if {
	held := data.grantline_index.sod_conflicts[role_cell[0]][role_cell[1]][input.request.role]
} else := []

# Every grant the broker lists counts as active, whatever its expires_at: expiry is the
# broker's business, and a stale grant here can only deny more, never allow more.
sod_conflicts contains grant.role if {
	some grant in input.active_grants
	grant.role in data.grantline_index.sod_conflicts[role_cell[0]][role_cell[1]][input.request.role]
}

# What only agents and break-glass requests must prove besides. Each body opens with a test
# that fails at once for a request without them, since rego-cpp tries every body.
#
# An agent (an `actor` key, whatever its value) gets at most what both it and its
# principal could get: allow proves the principal's side, agent_cleared the agent's.
refused if {
	_ := input.actor
	not agent_cleared
}

# Any break_glass value but false (or none) asks to skip approval, which glass_broken
# must then prove.
refused if {
	glass := input.request.break_glass
	glass != false
	not glass_broken
}

# The agent is bound to the role itself, and the role is not human_only (any human_only
# value but false makes it so). So is every agent earlier in the chain (input.actor.chain,
# the caller first): a chain is trusted no more than its least trusted agent.
agent_cleared if {
	not requested_role.human_only
	is_string(input.actor.subject)
	input.actor.subject != ""
	actor_bound
	count(unbound_chain_actors) == 0
}

unbound_chain_actors contains subject if {
	is_object(input.actor)
	some subject in object.get(input.actor, "chain", [])
	not bound_to_requested_role(subject)
}

bound_to_requested_role(subject) if {
	at := cell(subject)
	input.request.role in data.grantline_index.bindings_by_subject[at[0]][at[1]][subject]
}

bound_to_requested_role(subject) if {
	is_string(subject)
	some pattern in data.grantline_index.glob_bindings[role_cell[0]][role_cell[1]][input.request.role]
	glob.match(pattern, ["/"], subject)
}

actor_bound if {
	bound := data.grantline_index.bindings_by_subject[actor_cell[0]][actor_cell[1]]
	input.request.role in bound[input.actor.subject]
} else := true if {
	is_string(input.actor.subject)
	some pattern in data.grantline_index.glob_bindings[role_cell[0]][role_cell[1]][input.request.role]
	glob.match(pattern, ["/"], input.actor.subject)
}

# Break-glass needs a role that allows it, under that block's TTL cap, a justification for
# the record, and a person: an agent never breaks glass.
glass_broken if {
	input.request.break_glass == true
	is_object(requested_role.break_glass)
	input.request.ttl_seconds <= requested_role.break_glass.max_ttl_seconds
	is_string(input.request.justification)
	input.request.justification != ""
	not agent_acts
}

agent_acts if {
	_ := input.actor
}

# The role's approval factors in configuration order, each with its group's current
# members (sorted at load time; none when the group is not configured).
approval_factors := [factor |
	some required in requested_role.approval.all_of
	factor := {"group": required.group, "count": required.count, "members": group_members(required.group)}
]

group_members(group) := members if {
	at := cell(group)
	members := data.grantline_index.groups[at[0]][at[1]][group]
} else := []

role_cell := cell(input.request.role)

subject_cell := cell(input.identity.subject)

actor_cell := cell(input.actor.subject)

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

# The reasons about agents and break-glass sit behind one test on the input each, which
# fails at once for a request without them: rego-cpp pays for every body it tries.

deny_reasons contains msg if {
	_ := input.actor
	some msg in agent_denials
}

deny_reasons contains msg if {
	_ := input.request.break_glass
	some msg in break_glass_denials
}

agent_denials contains sprintf("role %s is human_only and cannot be granted to an agent", [input.request.role]) if {
	requested_role.human_only != false
}

agent_denials contains "actor.subject must be a non-empty string" if not actor_is_named

agent_denials contains msg if {
	actor_is_named
	is_object(requested_role)
	not actor_bound
	msg := sprintf("agent %s is not bound to role %s", [input.actor.subject, input.request.role])
}

agent_denials contains msg if {
	is_object(requested_role)
	some subject in unbound_chain_actors
	subject != input.actor.subject
	msg := sprintf("agent %v in the actor chain is not bound to role %s", [subject, input.request.role])
}

break_glass_denials contains "request.break_glass must be true or false" if {
	not is_boolean(input.request.break_glass)
}

break_glass_denials contains sprintf("role %s has no break-glass access", [input.request.role]) if {
	input.request.break_glass == true
	is_object(requested_role)
	not is_object(requested_role.break_glass)
}

break_glass_denials contains msg if {
	input.request.break_glass == true
	ttl := input.request.ttl_seconds
	cap := requested_role.break_glass.max_ttl_seconds
	is_number(ttl)
	ttl > cap
	msg := sprintf("ttl_seconds %v exceeds the break-glass cap of %v for %s", [ttl, cap, input.request.role])
}

break_glass_denials contains "break-glass needs a justification: request.justification must be a non-empty string" if {
	input.request.break_glass == true
	not justified
}

break_glass_denials contains "agents cannot break glass: only a person may" if {
	input.request.break_glass == true
	agent_acts
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

actor_is_named if {
	is_string(input.actor.subject)
	input.actor.subject != ""
}

justified if {
	is_string(input.request.justification)
	input.request.justification != ""
}

active_grants_listed if {
	is_array(input.active_grants)
	every grant in input.active_grants {
		is_string(grant.role)
	}
}

# The approval entrypoint: may input.approver approve the pending input.request, whose
# approval block (as the decision gave it) is input.approval? `groups` names the groups of
# its factors that the approver counts for; the broker counts approvals (docs/policy.md).
# Approvals are rare next to decisions, so these rules favour few statements over speed:
# rego-cpp's cost per decision grows with the size of the whole policy.
approval := {
	"allow": true,
	"reasons": [],
	"groups": approver_groups,
	"rule": "approval",
} if {
	approval_allowed
} else := {
	"allow": false,
	"reasons": approval_reasons,
	"groups": [],
	"rule": "approval",
}

# Nobody approves a request they are party to: its subject, whoever sent it, or an agent in
# its chain. The approver is a current member of a required group, and neither bound to
# nor holding a role that separation of duties keeps apart from the requested one.
# parties_listed comes first, so that `not approver_is_party` proves something.
approval_allowed if {
	approver_is_named
	parties_listed
	not approver_is_party
	count(approver_groups) > 0
	role_is_named
	approver_grants_listed
	count(approver_conflicts) == 0
}

# In factor order. Membership is read from the configuration now, not when the request
# was made: someone who left a group no longer counts.
approver_groups := [required.group |
	some required in input.approval.all_of
	required.group in data.grantline_index.memberships[approver_cell[0]][approver_cell[1]][input.approver.subject]
]

approver_cell := cell(input.approver.subject)

# The roles the requested one may not be held with that the approver is bound to (exactly
# or by a glob) or holds an active grant of.
approver_conflicts contains held if {
	some held in data.grantline_index.sod_conflicts[role_cell[0]][role_cell[1]][input.request.role]
	approver_holds(held)
}

approver_holds(held) if {
	held in data.grantline_index.bindings_by_subject[approver_cell[0]][approver_cell[1]][input.approver.subject]
} else := true if {
	some grant in input.approver_active_grants
	grant.role == held
} else := true if {
	is_string(input.approver.subject)
	at := cell(held)
	some pattern in data.grantline_index.glob_bindings[at[0]][at[1]][held]
	glob.match(pattern, ["/"], input.approver.subject)
}

approval_reasons := sort(approval_denials) if {
	count(approval_denials) > 0
} else := ["no rule proved the approval allowed"]

approval_denials contains "approver.subject must be a non-empty string" if not approver_is_named

approval_denials contains "request.subject and request.requested_by must be strings, request.actors a list" if {
	not parties_listed
}

approval_denials contains "request.role must be a non-empty string" if not role_is_named

approval_denials contains sprintf("nobody approves their own request: %s asked for it", [input.approver.subject]) if {
	approver_is_named
	approver_is_party
}

approval_denials contains "approval.all_of must list the required groups" if count(required_groups) == 0

approval_denials contains msg if {
	approver_is_named
	count(required_groups) > 0
	count(approver_groups) == 0
	msg := concat("", [
		"approver ", input.approver.subject,
		" is in none of the required groups: ", concat(", ", required_groups),
	])
}

approval_denials contains "approver_active_grants must be a list of grants, each with a string role" if {
	not approver_grants_listed
}

approval_denials contains msg if {
	some held in approver_conflicts
	msg := sprintf(
		"separation of duties: approver %s holds %s, which conflicts with %s",
		[input.approver.subject, held, input.request.role],
	)
}

approver_is_named if {
	is_string(input.approver.subject)
	input.approver.subject != ""
}

parties_listed if {
	is_string(input.request.subject)
	is_string(input.request.requested_by)
	is_array(input.request.actors)
}

approver_is_party if {
	parties_listed
	some party in array.concat([input.request.subject, input.request.requested_by], input.request.actors)
	party == input.approver.subject
}

required_groups := [required.group |
	some required in input.approval.all_of
	is_string(required.group)
]

approver_grants_listed if {
	is_array(input.approver_active_grants)
	every grant in input.approver_active_grants {
		is_string(grant.role)
	}
}
