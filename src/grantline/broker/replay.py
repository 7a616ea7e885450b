"""Recorded decisions evaluated again: with the bundle that made them, or under a proposed one.

Access decisions (``evaluated`` records) and approval decisions (``approval_given``,
``approval_refused``, ``rejected``) name their input and bundle by digest. Replaying one takes
the kept input, asks an engine for its answer, routes it as the broker did, and compares the
result with the record in the record's own form. The digests are left out of the comparison:
they name what was evaluated, not what was decided.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grantline.broker.decisions import (
    approval_evidence,
    approval_groups,
    approval_verdict,
    decision_evidence,
    outcome_of,
    route,
)
from grantline.domain.approvals import Requirement
from grantline.domain.models import Event
from grantline.policy.engine import UNDIGESTIBLE_INPUT, PolicyEngine

APPROVAL_EVENTS = frozenset({Event.APPROVAL_GIVEN, Event.APPROVAL_REFUSED, Event.REJECTED})


class Change(enum.StrEnum):
    """How a replayed decision compares with the recorded one."""

    SAME = "same"
    NEWLY_DENIED = "newly_denied"
    NEWLY_ALLOWED = "newly_allowed"
    # Still allowed or still denied, but something else differs: the reasons, the rule, an
    # approval now required or no longer required.
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    """A decision as one record holds it."""

    seq: int
    request_id: str
    event: str
    at: str
    approval: bool  # an approver's decision, not an access decision
    evidence: Mapping[str, Any]
    policy_digest: str
    input_digest: str


@dataclass(frozen=True, slots=True)
class Replayed:
    recorded: RecordedDecision
    evidence: Mapping[str, Any]
    change: Change
    # The members of the decision that differ (digests aside), for a reader to judge a change.
    differs: tuple[str, ...]
    # Who asked for what, from the input: what a reader needs to judge the change.
    subject: str
    role: str
    target: str


def recorded_decision(record: Mapping[str, Any]) -> RecordedDecision | None:
    """The decision ``record`` holds, or None when it holds none that an engine made (another
    kind of record, or a refusal the broker gave without asking the policy)."""
    event, data = record.get("event"), record.get("data")
    if not isinstance(data, Mapping):
        return None
    if event not in APPROVAL_EVENTS and event != Event.EVALUATED:
        return None
    evidence = data.get("decision")
    if not isinstance(evidence, Mapping):
        return None
    # An access decision names its digests beside the decision, an approval inside it.
    digests = data if event == Event.EVALUATED else evidence
    if event == Event.APPROVAL_GIVEN:
        # Which required groups the approval counts for decides the quorum: part of the answer.
        evidence = {**evidence, "groups": data.get("groups", [])}
    input_digest = digests.get("input_digest")
    if not isinstance(input_digest, str) or input_digest in {"", UNDIGESTIBLE_INPUT}:
        return None
    return RecordedDecision(
        seq=int(record.get("seq", 0)),
        request_id=str(record.get("request_id", "")),
        event=str(event),
        at=str(record.get("at", "")),
        approval=event != Event.EVALUATED,
        evidence=evidence,
        policy_digest=str(digests.get("policy_digest", "")),
        input_digest=input_digest,
    )


def replay(
    recorded: RecordedDecision,
    policy_input: Mapping[str, Any],
    engine: PolicyEngine,
) -> Replayed:
    """``recorded`` decided again by ``engine`` on ``policy_input``, the input it names."""
    if recorded.approval:
        evidence = approval_again(
            engine, policy_input, counted=recorded.event == Event.APPROVAL_GIVEN
        )
        asked = _mapping(policy_input.get("request"))
    else:
        evidence = _access_again(engine, policy_input)
        asked = {**_mapping(policy_input.get("request")), **_mapping(policy_input.get("identity"))}
    return Replayed(
        recorded=recorded,
        evidence=evidence,
        change=compare(recorded.evidence, evidence),
        differs=differences(recorded.evidence, evidence),
        subject=str(asked.get("subject", "")),
        role=str(asked.get("role", "")),
        target=str(asked.get("target", "")),
    )


def compare(before: Mapping[str, Any], after: Mapping[str, Any]) -> Change:
    """How decision evidence ``after`` differs from ``before``."""
    was, now = before.get("allow") is True, after.get("allow") is True
    if was and not now:
        return Change.NEWLY_DENIED
    if now and not was:
        return Change.NEWLY_ALLOWED
    return Change.SAME if outcome_of(before) == outcome_of(after) else Change.CHANGED


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """The members, digests aside, whose values differ between two decisions."""
    was, now = outcome_of(before), outcome_of(after)
    return tuple(sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k)))


def _access_again(engine: PolicyEngine, policy_input: Mapping[str, Any]) -> dict[str, Any]:
    request = _mapping(policy_input.get("request"))
    decision = engine.evaluate(policy_input)
    routed, _ = route(
        decision,
        role=str(request.get("role", "")),
        break_glass=request.get("break_glass") is True,
    )
    return decision_evidence(routed)


def approval_again(
    engine: PolicyEngine, approval_input: Mapping[str, Any], *, counted: bool
) -> dict[str, Any]:
    """The approval answer as recorded; with ``counted``, as an ``approval_given`` records
    it: with the required groups it counts for."""
    decision = engine.evaluate_approval(approval_input)
    try:
        required = Requirement.parse(approval_input.get("approval")).groups()
    except ValueError:
        # The broker builds this block from a parsed requirement; without one nothing counts.
        required = ()
    verdict = approval_verdict(decision, required)
    evidence = approval_evidence(verdict)
    if counted:
        evidence["groups"] = [g for g in approval_groups(verdict) if g in required]
    return evidence


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
