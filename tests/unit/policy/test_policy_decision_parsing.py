"""parse_decision fails closed; input digests are RFC 8785 canonical."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from grantline.domain.errors import PolicyError
from grantline.policy import canonical_input, input_digest, parse_decision
from grantline.policy.engine import NO_DECISION, SILENT_DENY, parse_approval

DIGESTS = {"policy_digest": "sha256:policy", "input_digest": "sha256:input"}


def parse(raw: Any) -> Any:
    return parse_decision(raw, **DIGESTS)


def test_an_object_with_allow_true_and_reasons_allows() -> None:
    decision = parse({"allow": True, "reasons": []})

    assert decision.allow is True
    assert decision.reasons == ()
    assert decision.policy_digest == "sha256:policy"
    assert decision.input_digest == "sha256:input"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, NO_DECISION),
        ({}, "allow must be a boolean"),
        ([], "expected an object, got an array"),
        ([{"allow": True, "reasons": []}], "expected an object, got an array"),
        ("allow", "expected an object, got a string"),
        (True, "expected an object, got a boolean"),
        (1, "expected an object, got a number"),
        ({"allow": "true", "reasons": []}, "allow must be a boolean"),
        ({"allow": 1, "reasons": []}, "allow must be a boolean"),
        ({"allow": None, "reasons": []}, "allow must be a boolean"),
        ({"allow": [True], "reasons": []}, "allow must be a boolean"),
        ({"allow": True}, "reasons must be a list of strings"),
        ({"allow": True, "reasons": "none"}, "reasons must be a list of strings"),
        ({"allow": True, "reasons": [1]}, "reasons must be a list of strings"),
        ({"allow": True, "reasons": None}, "reasons must be a list of strings"),
        ({"allow": True, "reasons": [], "require_approval": "no"}, "require_approval"),
        ({"allow": True, "reasons": [], "require_approval": None}, "require_approval"),
    ],
)
def test_anything_but_a_well_formed_decision_denies_saying_why(raw: Any, reason: str) -> None:
    decision = parse(raw)

    assert decision.allow is False
    assert len(decision.reasons) == 1
    assert reason in decision.reasons[0]
    assert decision.policy_digest == "sha256:policy"


def test_a_malformed_decision_names_itself_malformed() -> None:
    assert parse({"allow": 1, "reasons": []}).reasons == (
        "policy decision is malformed: allow must be a boolean",
    )


def test_an_undefined_decision_says_the_policy_returned_none() -> None:
    assert parse(None).reasons == ("policy returned no decision",)


def test_a_deny_keeps_the_policy_reasons_in_order() -> None:
    decision = parse({"allow": False, "reasons": ["b", "a"]})

    assert decision.allow is False
    assert decision.reasons == ("b", "a")


def test_a_deny_without_reasons_gets_one() -> None:
    assert parse({"allow": False, "reasons": []}).reasons == (SILENT_DENY,)


def test_require_approval_is_read_when_boolean() -> None:
    assert parse({"allow": True, "reasons": [], "require_approval": True}).require_approval
    assert not parse({"allow": True, "reasons": []}).require_approval


def test_other_keys_are_kept_as_extra() -> None:
    decision = parse({"allow": True, "reasons": [], "rule": "rbac", "score": 3})

    assert dict(decision.extra) == {"rule": "rbac", "score": 3}


def test_input_digest_is_sha256_of_the_rfc8785_canonical_json() -> None:
    policy_input = {"b": [1, "é"], "a": {"z": None, "y": True}}
    canonical = b'{"a":{"y":true,"z":null},"b":[1,"\xc3\xa9"]}'

    assert canonical_input(policy_input) == canonical
    assert input_digest(policy_input) == "sha256:" + hashlib.sha256(canonical).hexdigest()


def test_input_digest_ignores_key_order() -> None:
    assert input_digest({"a": 1, "b": 2}) == input_digest({"b": 2, "a": 1})


def test_input_digest_changes_with_any_value() -> None:
    assert input_digest({"ttl_seconds": 600}) != input_digest({"ttl_seconds": 601})


@pytest.mark.parametrize(
    "bad",
    [{"x": float("nan")}, {"x": float("inf")}, {"x": 2**60}, {"x": object()}, {"x": {1: 2}}],
)
def test_an_input_that_is_not_plain_json_cannot_be_digested(bad: dict[str, Any]) -> None:
    with pytest.raises(PolicyError, match="not canonical JSON"):
        input_digest(bad)


FACTORS = {"all_of": [{"group": "security", "count": 1, "members": ["user:sam"]}]}


def test_a_decision_pending_approval_keeps_its_factors_and_break_glass_its_flag() -> None:
    pending = parse({"allow": True, "reasons": [], "require_approval": True, "approval": FACTORS})
    glass = parse({"allow": True, "reasons": [], "break_glass": True, "rule": "break_glass"})

    assert pending.allow and pending.require_approval
    assert pending.extra["approval"] == FACTORS
    assert glass.allow and glass.extra == {"break_glass": True, "rule": "break_glass"}


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"break_glass": "yes"}, "break_glass must be a boolean"),
        ({"break_glass": None}, "break_glass must be a boolean"),
        ({"approval": None}, "approval must be an object"),
        ({"approval": {}}, "approval must be an object"),
        ({"approval": {"all_of": []}}, "approval must be an object"),
        ({"approval": {"all_of": ["security"]}}, "approval must be an object"),
        ({"approval": {"all_of": [{"group": "s", "count": 1}]}}, "approval must be an object"),
        ({"approval": {"all_of": [{"group": "s", "count": 0, "members": []}]}}, "approval"),
        ({"approval": {"all_of": [{"group": "s", "count": True, "members": []}]}}, "approval"),
        ({"approval": {"all_of": [{"group": 1, "count": 1, "members": []}]}}, "approval"),
        ({"approval": {"all_of": [{"group": "s", "count": 1, "members": [1]}]}}, "approval"),
    ],
)
def test_a_malformed_break_glass_flag_or_approval_block_denies(
    extra: dict[str, Any], reason: str
) -> None:
    decision = parse({"allow": True, "reasons": [], "require_approval": True, **extra})

    assert not decision.allow
    assert decision.reasons[0].startswith("policy decision is malformed: ")
    assert reason in decision.reasons[0]


def approve(raw: Any) -> Any:
    return parse_approval(raw, **DIGESTS)


def test_an_approval_allow_keeps_the_groups_the_approver_counts_for() -> None:
    decision = approve({"allow": True, "reasons": [], "groups": ["security"], "rule": "approval"})

    assert decision.allow
    assert decision.extra == {"groups": ["security"], "rule": "approval"}
    assert decision.input_digest == "sha256:input"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, NO_DECISION),
        ({"allow": True, "reasons": []}, "groups must be a list of group names"),
        ({"allow": True, "reasons": [], "groups": "security"}, "groups must be a list"),
        ({"allow": True, "reasons": [], "groups": [1]}, "groups must be a list"),
        ({"allow": True, "reasons": [], "groups": []}, "must name the groups"),
        ({"allow": "true", "reasons": [], "groups": ["security"]}, "allow must be a boolean"),
    ],
)
def test_anything_but_a_well_formed_approval_denies_saying_why(raw: Any, reason: str) -> None:
    decision = approve(raw)

    assert not decision.allow
    assert len(decision.reasons) == 1
    assert reason in decision.reasons[0]


def test_an_approval_deny_keeps_the_policy_reasons() -> None:
    decision = approve({"allow": False, "reasons": ["not in security"], "groups": []})

    assert not decision.allow
    assert decision.reasons == ("not in security",)
