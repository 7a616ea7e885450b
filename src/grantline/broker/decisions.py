"""From a policy's answer to the decision the broker acts on and records.

The broker and ``grantline policy replay`` both go through these functions: a replayed
decision is compared with the recorded one in the form the record holds, after the same
fail-closed routing, so that a replay confirms what the broker did, not only what the
policy said.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from grantline.domain.approvals import Requirement
from grantline.domain.models import Decision
from grantline.domain.policy_input import json_safe
from grantline.policy.engine import OPA_PROVENANCE

NO_REQUIRED_GROUP = "the approval policy named none of the required groups"


def route(
    decision: Decision, *, role: str, break_glass: bool
) -> tuple[Decision, Requirement | None]:
    """The decision to act on, and the approvers to wait for if any. Fails closed: a
    break-glass request the policy did not treat as one, or an approval the policy asked for
    without naming valid approvers, is a deny."""
    if not decision.allow:
        return decision, None
    if break_glass:
        if decision.extra.get("break_glass") is not True:
            return denied(decision, f"the policy did not accept break-glass for {role}"), None
        return decision, None
    if not decision.require_approval:
        return decision, None
    try:
        return decision, Requirement.parse(decision.extra.get("approval"))
    except ValueError as exc:
        reason = f"the policy requires approval but names no valid approvers: {exc}"
        return denied(decision, reason), None


def denied(decision: Decision, reason: str) -> Decision:
    """``decision`` turned into a deny for ``reason``, keeping what else the policy said."""
    return Decision(
        allow=False,
        reasons=(reason,),
        policy_digest=decision.policy_digest,
        input_digest=decision.input_digest,
        require_approval=decision.require_approval,
        extra=decision.extra,
        input_json=decision.input_json,
    )


def approval_verdict(decision: Decision, required_groups: Iterable[str]) -> Decision:
    """The approval policy's answer as the broker acts on it: a yes that counts towards none
    of the required groups refuses."""
    if decision.allow and not set(approval_groups(decision)) & set(required_groups):
        return denied(decision, NO_REQUIRED_GROUP)
    return decision


def approval_groups(decision: Decision) -> list[str]:
    groups = decision.extra.get("groups", [])
    return [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []


def decision_evidence(decision: Decision) -> dict[str, Any]:
    """The ``decision`` member of an ``evaluated`` record."""
    evidence: dict[str, Any] = json_safe(
        {
            **dict(decision.extra),
            **decision.summary(),
            "require_approval": decision.require_approval,
        }
    )
    return evidence


def approval_evidence(decision: Decision) -> dict[str, Any]:
    """The ``decision`` member of an approval record (given, refused or rejected)."""
    evidence = {
        "allow": decision.allow,
        "reasons": list(decision.reasons),
        "rule": str(decision.extra.get("rule", "")),
        "policy_digest": decision.policy_digest,
        "input_digest": decision.input_digest,
    }
    if OPA_PROVENANCE in decision.extra:
        evidence[OPA_PROVENANCE] = json_safe(decision.extra[OPA_PROVENANCE])
    return evidence


# What names the policy, the input and the engine's own call rather than the answer.
_PROVENANCE = frozenset({"policy_digest", "input_digest", OPA_PROVENANCE})


def outcome_of(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """What a replay compares of a recorded decision: everything but the digests and OPA's
    provenance (its decision id differs on every call), which name the bundle, the input and
    the call rather than the answer."""
    return {k: v for k, v in evidence.items() if k not in _PROVENANCE}
