"""Replaying one recorded decision: read from its record, decided again, compared."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from grantline.broker.decisions import decision_evidence, route
from grantline.broker.replay import Change, compare, recorded_decision, replay
from grantline.domain.models import AccessRequest, Decision, Identity, Ttl
from grantline.domain.policy_input import build_policy_input
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.policy.engine import PolicyEngine

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


class _AllowsAnything:
    """An engine that allows without treating the request as break-glass: the broker must
    deny such a break-glass request, and so must its replay."""

    digest = "sha256:" + "a" * 64

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        return Decision(True, (), self.digest, "sha256:" + "i" * 64, extra={"rule": "rbac"})

    def evaluate_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        return Decision(True, (), self.digest, "sha256:" + "i" * 64, extra={"groups": ["x"]})


def test_break_glass_is_routed_again_as_the_broker_routed_it() -> None:
    engine = _AllowsAnything()
    request = AccessRequest(
        "postgres://orders-db", "db-read", Ttl(600), break_glass=True, justification="x"
    )
    policy_input = build_policy_input(Identity(CI, "https://issuer"), request, [], NOW)
    routed, _ = route(engine.evaluate(policy_input), role="db-read", break_glass=True)
    assert routed.allow is False  # what the broker recorded
    record = {
        "seq": 1,
        "request_id": "r",
        "event": "evaluated",
        "data": {"decision": decision_evidence(routed), "input_digest": routed.input_digest},
    }
    recorded = recorded_decision(record)
    assert recorded is not None
    result = replay(recorded, policy_input, cast(PolicyEngine, engine))
    assert result.change is Change.SAME
    assert result.evidence["reasons"] == ["the policy did not accept break-glass for db-read"]


def test_an_approval_counting_for_another_group_is_a_change() -> None:
    engine = _AllowsAnything()  # counts every approver for group "x"
    approval_input = {
        "approval": {"all_of": [{"group": "x", "count": 1}, {"group": "y", "count": 1}]}
    }
    given = {
        "event": "approval_given",
        "data": {
            "decision": {"allow": True, "reasons": [], "rule": "", "input_digest": "sha256:i"},
            "groups": ["y"],
        },
    }
    recorded = recorded_decision(given)
    assert recorded is not None
    result = replay(recorded, approval_input, cast(PolicyEngine, engine))
    assert (result.change, result.differs) == (Change.CHANGED, ("groups",))
    given["data"]["groups"] = ["x"]  # type: ignore[index]
    recorded = recorded_decision(given)
    assert recorded is not None
    assert replay(recorded, approval_input, cast(PolicyEngine, engine)).change is Change.SAME


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
