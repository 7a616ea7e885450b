"""The embedded engine fails closed: engine errors, odd answers and odd inputs all deny."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grantline.domain.errors import PolicyError
from grantline.policy import ENGINE_ERROR, EmbeddedRegoEngine
from grantline.policy.embedded import _read_output
from grantline.policy.engine import UNDIGESTIBLE_INPUT

Inputs = Callable[..., dict[str, Any]]
WritePolicy = Callable[..., Path]

# Denies an empty input (so it loads) and answers by input.mode otherwise. "bad json" hits
# a rego-cpp 1.5 bug: concat's result keeps raw quotes inside sprintf.
SWITCH = """package grantline

import rego.v1

default decision := {"allow": false, "reasons": ["no mode"]}

decision := {"allow": true, "reasons": []} if input.mode == "allow"
decision := to_number(input.text) if input.mode == "builtin error"
decision := 1 / input.zero if input.mode == "division by zero"
decision := {"allow": "true", "reasons": []} if input.mode == "string allow"
decision := {"allow": 1, "reasons": []} if input.mode == "numeric allow"
decision := {"allow": true} if input.mode == "no reasons"
decision := {"allow": true, "reasons": "fine"} if input.mode == "reasons not a list"
decision := [{"allow": true, "reasons": []}] if input.mode == "list"
decision := {"allow": true, "reasons": [], "require_approval": "no"} if input.mode == "bad approval"
decision := {"allow": false, "reasons": []} if input.mode == "silent deny"
decision := {"allow": true, "reasons": []} if input.mode == "conflict"
decision := {"allow": false, "reasons": ["no"]} if input.mode == "conflict"
decision := {"allow": false, "reasons": [sprintf("(%s)", [concat(",", ["a"])])]} if {
	input.mode == "bad json"
}
"""


@pytest.fixture
def switch(write_policy: WritePolicy) -> EmbeddedRegoEngine:
    return EmbeddedRegoEngine(write_policy(SWITCH))


def test_the_switch_policy_allows_when_asked(switch: EmbeddedRegoEngine) -> None:
    assert switch.evaluate({"mode": "allow"}).allow


@pytest.mark.parametrize("mode", ["builtin error", "division by zero", "conflict", "bad json"])
def test_an_engine_error_is_a_deny_marked_as_an_engine_error(
    switch: EmbeddedRegoEngine, mode: str
) -> None:
    decision = switch.evaluate({"mode": mode, "text": "abc", "zero": 0})

    assert not decision.allow
    assert decision.reasons[0].startswith("policy evaluation failed: ")
    assert decision.extra == {ENGINE_ERROR: True}


def test_invalid_json_from_the_engine_is_a_deny_saying_so(switch: EmbeddedRegoEngine) -> None:
    decision = switch.evaluate({"mode": "bad json"})

    assert not decision.allow
    assert "the engine returned unreadable output" in decision.reasons[0]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("string allow", "allow must be a boolean"),
        ("numeric allow", "allow must be a boolean"),
        ("no reasons", "reasons must be a list of strings"),
        ("reasons not a list", "reasons must be a list of strings"),
        ("list", "expected an object"),
        ("bad approval", "require_approval must be a boolean"),
        ("silent deny", "without giving a reason"),
    ],
)
def test_a_malformed_answer_is_a_deny_saying_why(
    switch: EmbeddedRegoEngine, mode: str, reason: str
) -> None:
    decision = switch.evaluate({"mode": mode})

    assert not decision.allow
    assert reason in decision.reasons[0]


def test_an_undefined_decision_is_a_deny(write_policy: WritePolicy) -> None:
    engine = EmbeddedRegoEngine(
        write_policy(
            "package grantline\n\nimport rego.v1\n\n"
            'decision := {"allow": false, "reasons": ["empty"]} if count(input) == 0\n'
        )
    )

    assert engine.evaluate({"x": 1}).reasons == ("policy returned no decision",)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2**63, b"bytes"])
def test_an_input_that_is_not_plain_json_is_denied(switch: EmbeddedRegoEngine, bad: object) -> None:
    decision = switch.evaluate({"mode": "allow", "value": bad})

    assert not decision.allow
    assert decision.input_digest == UNDIGESTIBLE_INPUT
    assert "not canonical JSON" in decision.reasons[0]


def test_the_engine_still_decides_after_an_error(switch: EmbeddedRegoEngine) -> None:
    switch.evaluate({"mode": "builtin error", "text": "abc"})

    assert switch.evaluate({"mode": "allow"}).allow
    assert switch.ready()


@pytest.mark.parametrize(
    "text",
    [
        '{"expressions":[{"allow":false, "reasons":["x"], "allow":true}]}',
        '{"expressions":[{"allow":false, "reasons":[""x""]}]}',
        '{"expressions":[{"allow":true}, {"allow":true}]}',
        '{"result":[{"allow":true}]}',
        "<error>",
    ],
    ids=["duplicate keys", "broken escaping", "two results", "other shape", "error text"],
)
def test_engine_output_that_cannot_be_read_unambiguously_is_refused(text: str) -> None:
    with pytest.raises(PolicyError):
        _read_output(text)


def test_undefined_engine_output_reads_as_no_decision() -> None:
    assert _read_output("undefined") is None


def test_concurrent_evaluations_each_get_their_own_decision(
    shipped_dir: Path, make_input: Inputs
) -> None:
    engine = EmbeddedRegoEngine(shipped_dir)
    allowed, denied = make_input(ttl=600), make_input(ttl=3601)
    wrong: list[str] = []

    def work(offset: int) -> None:
        for i in range(100):
            expect_allow = (i + offset) % 2 == 0
            decision = engine.evaluate(allowed if expect_allow else denied)
            if decision.allow is not expect_allow:
                wrong.append(f"{offset}/{i}: {decision.reasons}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert wrong == []


def extended_policy(shipped_dir: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "extended"
    directory.mkdir()
    (directory / "grantline.rego").write_bytes((shipped_dir / "grantline.rego").read_bytes())
    data = json.loads((shipped_dir / "data.json").read_text())
    data["grantline"]["roles"]["break-fix"] = {
        "max_ttl_seconds": 600,
        "targets": ["ssh://bastion"],
        "human_only": True,
        "credential_types": ["jwt", "x509"],
    }
    data["grantline"]["roles"]["prod-write"] = {
        "max_ttl_seconds": 600,
        "targets": ["k8s://prod"],
        "approval": {"all_of": [{"group": "security", "count": 1}]},
    }
    data["grantline"]["bindings"].append({"subject": "user:bob", "roles": ["break-fix"]})
    data["grantline"]["bindings"].append({"subject": "user:bob", "roles": ["prod-write"]})
    (directory / "data.json").write_text(json.dumps(data))
    return directory


def test_a_human_only_role_is_allowed_to_the_human_but_not_to_an_agent(
    shipped_dir: Path, tmp_path: Path, make_input: Inputs
) -> None:
    engine = EmbeddedRegoEngine(extended_policy(shipped_dir, tmp_path))
    ask = {"subject": "user:bob", "role": "break-fix", "target": "ssh://bastion", "ttl": 60}

    assert engine.evaluate(make_input(**ask)).allow
    decision = engine.evaluate(make_input(**ask, actor={"subject": "spiffe://x/agent"}))
    assert not decision.allow
    assert "role break-fix is human_only and cannot be granted to an agent" in decision.reasons


def test_a_role_listing_credential_types_allows_those_only(
    shipped_dir: Path, tmp_path: Path, make_input: Inputs
) -> None:
    engine = EmbeddedRegoEngine(extended_policy(shipped_dir, tmp_path))
    policy_input = make_input(subject="user:bob", role="break-fix", target="ssh://bastion")

    policy_input["request"]["credential_type"] = "x509"
    assert engine.evaluate(policy_input).allow
    policy_input["request"]["credential_type"] = "vault_token"
    assert not engine.evaluate(policy_input).allow


def test_a_role_with_an_approval_rule_allows_pending_approval(
    shipped_dir: Path, tmp_path: Path, make_input: Inputs
) -> None:
    engine = EmbeddedRegoEngine(extended_policy(shipped_dir, tmp_path))

    decision = engine.evaluate(
        make_input(subject="user:bob", role="prod-write", target="k8s://prod")
    )

    assert decision.allow
    assert decision.require_approval is True
