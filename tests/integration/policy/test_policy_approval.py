"""The approval entrypoint through the embedded engine: it fails closed like the decision, a
policy may lack it, and the shipped rules read bindings, grants and groups as configured."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grantline.domain.errors import ConfigError
from grantline.policy import ENGINE_ERROR, NO_APPROVAL_RULE, EmbeddedRegoEngine, input_digest
from grantline.policy.engine import NO_DECISION, UNDIGESTIBLE_INPUT

WritePolicy = Callable[..., Path]

DENY_DECISION = 'decision := {"allow": false, "reasons": ["no"]}\n'
HEADER = "package grantline\n\nimport rego.v1\n\n"

# Denies an empty input (so it loads) and answers approvals by input.mode otherwise.
SWITCH = (
    HEADER
    + DENY_DECISION
    + """
default approval := {"allow": false, "reasons": ["no mode"], "groups": []}

approval := {"allow": true, "reasons": [], "groups": ["security"]} if input.mode == "allow"
approval := {"allow": true, "reasons": []} if input.mode == "no groups"
approval := {"allow": true, "reasons": [], "groups": []} if input.mode == "empty groups"
approval := {"allow": true, "reasons": [], "groups": "security"} if input.mode == "groups text"
approval := to_number(input.text) if input.mode == "builtin error"
"""
)


def approval_input(
    approver: str = "user:sam",
    role: str = "db-admin",
    subject: str = "user:alice",
    grants: tuple[str, ...] = (),
    groups: tuple[str, ...] = ("security", "platform-oncall"),
) -> dict[str, Any]:
    """An approval input shaped as in docs/policy.md."""
    return {
        "approver": {"subject": approver, "issuer": "https://dev.grantline.local", "claims": {}},
        "approver_active_grants": [
            {"request_id": f"r{i}", "role": r, "target": "t", "expires_at": "2030-01-01T00:00:00Z"}
            for i, r in enumerate(grants)
        ],
        "request": {
            "request_id": "q1",
            "subject": subject,
            "requested_by": subject,
            "actors": [],
            "role": role,
            "target": "postgres://orders-db",
            "ttl_seconds": 600,
            "credential_type": "jwt",
            "purpose": "test",
            "ticket": "",
        },
        "approval": {"all_of": [{"group": g, "count": 1, "members": []} for g in groups]},
        "now": "2026-11-23T10:00:00.000Z",
    }


@pytest.fixture
def switch(write_policy: WritePolicy) -> EmbeddedRegoEngine:
    return EmbeddedRegoEngine(write_policy(SWITCH))


def test_a_policy_without_an_approval_rule_loads_and_denies_every_approval(
    write_policy: WritePolicy,
) -> None:
    engine = EmbeddedRegoEngine(write_policy(HEADER + DENY_DECISION))
    policy_input = approval_input()

    decision = engine.evaluate_approval(policy_input)

    assert not decision.allow
    assert decision.reasons == (NO_APPROVAL_RULE,)
    assert decision.policy_digest == engine.digest
    assert decision.input_digest == input_digest(policy_input)


def test_a_rule_that_only_starts_with_approval_is_no_approval_rule(
    write_policy: WritePolicy,
) -> None:
    source = HEADER + DENY_DECISION + "approval_groups := []\n"

    decision = EmbeddedRegoEngine(write_policy(source)).evaluate_approval(approval_input())

    assert decision.reasons == (NO_APPROVAL_RULE,)


def test_an_approval_rule_in_another_package_is_not_the_approval_rule(
    write_policy: WritePolicy,
) -> None:
    directory = write_policy(HEADER + DENY_DECISION)
    (directory / "other.rego").write_text(
        'package other\n\napproval := {"allow": true, "reasons": [], "groups": ["security"]}\n'
    )

    decision = EmbeddedRegoEngine(directory).evaluate_approval(approval_input())

    assert decision.reasons == (NO_APPROVAL_RULE,)


def test_a_default_approval_rule_is_found(write_policy: WritePolicy) -> None:
    rule = 'default approval := {"allow": false, "reasons": ["nobody"], "groups": []}\n'

    decision = EmbeddedRegoEngine(write_policy(HEADER + DENY_DECISION + rule)).evaluate_approval(
        approval_input()
    )

    assert decision.reasons == ("nobody",)


def test_an_approval_rule_undefined_for_the_input_is_a_deny(write_policy: WritePolicy) -> None:
    source = (
        HEADER
        + DENY_DECISION
        + 'approval := {"allow": false, "reasons": ["empty"], "groups": []} if count(input) == 0\n'
    )

    decision = EmbeddedRegoEngine(write_policy(source)).evaluate_approval(approval_input())

    assert decision.reasons == (NO_DECISION,)


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (
            'approval := {"allow": true, "reasons": [], "groups": ["security"]}',
            "its approval rule allows an empty input",
        ),
        ('approval := {"allow": false, "reasons": []}', "its approval rule is malformed"),
        ('approval := {"allow": "no", "reasons": [], "groups": []}', "allow must be a boolean"),
        ('approval := to_number("abc")', "its approval rule fails on an empty input"),
    ],
)
def test_a_policy_whose_approval_rule_misbehaves_on_an_empty_input_is_refused(
    write_policy: WritePolicy, rule: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        EmbeddedRegoEngine(write_policy(HEADER + DENY_DECISION + rule + "\n"))


def test_an_approval_rule_undefined_on_an_empty_input_still_loads(
    write_policy: WritePolicy,
) -> None:
    source = HEADER + DENY_DECISION + 'approval := {"allow": false} if input.approver\n'

    assert EmbeddedRegoEngine(write_policy(source)).ready()


def test_the_switch_policy_approves_when_asked(switch: EmbeddedRegoEngine) -> None:
    decision = switch.evaluate_approval({"mode": "allow"})

    assert decision.allow
    assert decision.extra == {"groups": ["security"]}


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("no groups", "groups must be a list of group names"),
        ("groups text", "groups must be a list of group names"),
        ("empty groups", "an allowed approval must name the groups"),
    ],
)
def test_a_malformed_approval_answer_is_a_deny_saying_why(
    switch: EmbeddedRegoEngine, mode: str, reason: str
) -> None:
    decision = switch.evaluate_approval({"mode": mode})

    assert not decision.allow
    assert reason in decision.reasons[0]


def test_an_engine_error_in_the_approval_rule_is_a_deny_marked_as_such(
    switch: EmbeddedRegoEngine,
) -> None:
    decision = switch.evaluate_approval({"mode": "builtin error", "text": "abc"})

    assert not decision.allow
    assert decision.extra == {ENGINE_ERROR: True}
    assert switch.evaluate_approval({"mode": "allow"}).allow


def test_an_approval_input_that_is_not_plain_json_is_denied(switch: EmbeddedRegoEngine) -> None:
    decision = switch.evaluate_approval({"mode": "allow", "value": float("nan")})

    assert not decision.allow
    assert decision.input_digest == UNDIGESTIBLE_INPUT


def with_config(policy_copy: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = policy_copy / "data.json"
    data = json.loads(path.read_text())
    change(data["grantline"])
    path.write_text(json.dumps(data))
    return policy_copy


def test_a_glob_binding_to_a_conflicting_role_keeps_an_approver_out(policy_copy: Path) -> None:
    def ops_deploy(config: dict[str, Any]) -> None:
        config["bindings"].append({"subject": "spiffe://example.org/ops/*", "roles": ["deployer"]})
        config["groups"]["security"].append("spiffe://example.org/ops/sre")

    engine = EmbeddedRegoEngine(with_config(policy_copy, ops_deploy))

    denied = engine.evaluate_approval(approval_input("spiffe://example.org/ops/sre"))
    allowed = engine.evaluate_approval(approval_input("spiffe://example.org/ops/sre", "db-read"))

    assert not denied.allow
    assert denied.reasons == (
        "separation of duties: approver spiffe://example.org/ops/sre holds deployer, "
        "which conflicts with db-admin",
    )
    assert allowed.allow
    assert allowed.extra["groups"] == ["security"]


def test_group_changes_reach_both_entrypoints_on_reload(
    policy_copy: Path, make_input: Callable[..., dict[str, Any]]
) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    asking = make_input(subject="user:alice", role="report-write", target="s3://reports")
    assert engine.evaluate_approval(approval_input("user:sofia")).allow

    def sofia_leaves(config: dict[str, Any]) -> None:
        config["groups"]["security"] = ["user:sam", "user:sara"]

    with_config(policy_copy, sofia_leaves)

    assert engine.reload_if_changed()
    decision = engine.evaluate(asking)
    assert decision.extra["approval"] == {
        "all_of": [{"group": "security", "count": 1, "members": ["user:sam", "user:sara"]}]
    }
    assert not engine.evaluate_approval(approval_input("user:sofia")).allow


def test_the_approval_answer_is_decided_by_the_bundle_in_force(policy_copy: Path) -> None:
    engine = EmbeddedRegoEngine(policy_copy)

    decision = engine.evaluate_approval(approval_input())

    assert decision.allow
    assert decision.policy_digest == engine.digest
    assert decision.extra == {"groups": ["security"], "rule": "approval"}
