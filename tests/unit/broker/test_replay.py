"""Replaying one recorded decision: read from its record, decided again, compared."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from grantline.broker.decisions import decision_evidence, route
from grantline.broker.replay import Change, compare, recorded_decision, replay
from grantline.domain.models import AccessRequest, Identity, Ttl
from grantline.domain.policy_input import build_policy_input
from grantline.policy.embedded import EmbeddedRegoEngine

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CI = "spiffe://example.org/ci-runner"


@pytest.fixture(scope="module")
def engine() -> EmbeddedRegoEngine:
    return EmbeddedRegoEngine(POLICIES)


def evaluated(
    engine: EmbeddedRegoEngine, role: str, ttl: int, *, break_glass: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A policy input and the ``evaluated`` record the broker would write for it."""
    request = AccessRequest(
        "postgres://orders-db",
        role,
        Ttl(ttl),
        break_glass=break_glass,
        justification="x" if break_glass else "",
    )
    policy_input = build_policy_input(Identity(CI, "https://issuer"), request, [], NOW)
    decision, _ = route(engine.evaluate(policy_input), role=role, break_glass=break_glass)
    record = {
        "seq": 7,
        "request_id": "r-1",
        "event": "evaluated",
        "at": "2026-11-24T10:00:00.000Z",
        "data": {
            "decision": decision_evidence(decision),
            "policy_digest": decision.policy_digest,
            "input_digest": decision.input_digest,
        },
    }
    return policy_input, record


def test_a_recorded_decision_replays_the_same_with_the_same_bundle(
    engine: EmbeddedRegoEngine,
) -> None:
    for role, ttl in (("db-read", 600), ("db-write", 1200), ("deployer", 60)):
        policy_input, record = evaluated(engine, role, ttl)
        recorded = recorded_decision(record)
        assert recorded is not None
        result = replay(recorded, policy_input, engine)
        assert result.change is Change.SAME, (role, result.evidence)
        assert (result.subject, result.role) == (CI, role)


def test_break_glass_is_routed_again_as_the_broker_routed_it(engine: EmbeddedRegoEngine) -> None:
    # db-read has no break-glass block: the policy may allow the request, the broker denies
    # it as break-glass; the replay must reach the same deny, not the policy's raw answer.
    policy_input, record = evaluated(engine, "db-read", 600, break_glass=True)
    assert record["data"]["decision"]["allow"] is False
    recorded = recorded_decision(record)
    assert recorded is not None
    assert replay(recorded, policy_input, engine).change is Change.SAME


def test_a_tampered_recorded_decision_does_not_replay_the_same(engine: EmbeddedRegoEngine) -> None:
    policy_input, record = evaluated(engine, "db-write", 1200)
    record["data"]["decision"] = {**record["data"]["decision"], "allow": True, "reasons": []}
    recorded = recorded_decision(record)
    assert recorded is not None
    assert replay(recorded, policy_input, engine).change is Change.NEWLY_DENIED


def test_changes_are_classified_by_what_a_reviewer_cares_about() -> None:
    allow = {"allow": True, "reasons": [], "rule": "rbac", "policy_digest": "sha256:a"}
    deny = {"allow": False, "reasons": ["no"], "rule": "deny"}
    assert compare(allow, {**allow, "policy_digest": "sha256:b"}) is Change.SAME
    assert compare(allow, deny) is Change.NEWLY_DENIED
    assert compare(deny, allow) is Change.NEWLY_ALLOWED
    assert compare(deny, {**deny, "reasons": ["other"]}) is Change.CHANGED
    assert compare(allow, {**allow, "require_approval": True}) is Change.CHANGED


@pytest.mark.parametrize(
    "record",
    [
        {"event": "requested", "data": {"decision": {"allow": True}, "input_digest": "sha256:x"}},
        {"event": "evaluated", "data": {"decision": {"allow": False}, "input_digest": "none"}},
        {"event": "approval_refused", "data": {"decision": {"allow": False, "input_digest": ""}}},
        {"event": "evaluated", "data": "not an object"},
        {"event": "evaluated", "data": {"decision": ["not", "an", "object"]}},
    ],
)
def test_records_without_a_replayable_decision_are_skipped(record: dict[str, Any]) -> None:
    assert recorded_decision(record) is None


def test_an_approval_record_names_its_digests_inside_its_decision() -> None:
    record = {
        "seq": 3,
        "request_id": "r",
        "event": "approval_given",
        "data": {
            "decision": {
                "allow": True,
                "reasons": [],
                "rule": "approver",
                "policy_digest": "sha256:p",
                "input_digest": "sha256:i",
            }
        },
    }
    recorded = recorded_decision(record)
    assert recorded is not None
    assert recorded.approval and (recorded.policy_digest, recorded.input_digest) == (
        "sha256:p",
        "sha256:i",
    )
