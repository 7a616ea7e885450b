"""The shipped policy, loaded by the embedded engine, decides every table-driven case as written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grantline.policy import (
    DecisionCase,
    EmbeddedRegoEngine,
    PolicyBundle,
    input_digest,
    load_cases,
    run_cases,
    run_policy_tests,
)
from grantline.policy import embedded as embedded_module

SHIPPED = Path(__file__).resolve().parents[3] / "policies"
CASES = load_cases(SHIPPED / "tests")


@pytest.fixture(scope="module")
def engine() -> EmbeddedRegoEngine:
    return EmbeddedRegoEngine(SHIPPED)


@pytest.fixture(scope="module")
def json_text_engine() -> EmbeddedRegoEngine:
    """The same policy fed through regopy's JSON text input instead of pre-escaped values."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embedded_module, "_input_setter", lambda: embedded_module._set_json_input)
        return EmbeddedRegoEngine(SHIPPED)


def test_there_are_cases_for_allow_and_for_deny_at_each_entrypoint() -> None:
    for entrypoint in ("decision", "approval"):
        outcomes = {case.expect["allow"] for case in CASES if case.entrypoint == entrypoint}

        assert outcomes == {True, False}, entrypoint
    assert len(CASES) >= 30


def test_the_cases_exercise_every_rule_of_the_decision() -> None:
    rules = {case.expect.get("rule") for case in CASES if case.entrypoint == "decision"}

    assert {"rbac", "approval", "break_glass", "deny"} <= rules


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_shipped_policy_decides_the_case_as_expected(
    engine: EmbeddedRegoEngine, case: DecisionCase
) -> None:
    [result] = run_cases(engine, [case])

    assert result.passed, result.message


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_json_text_input_decides_exactly_like_escaped_input(
    engine: EmbeddedRegoEngine, json_text_engine: EmbeddedRegoEngine, case: DecisionCase
) -> None:
    if case.entrypoint == "approval":
        assert json_text_engine.evaluate_approval(case.input) == engine.evaluate_approval(
            case.input
        )
    else:
        assert json_text_engine.evaluate(case.input) == engine.evaluate(case.input)


def test_the_escaped_input_path_is_in_use_on_this_regopy() -> None:
    assert embedded_module._escaped_input_is_faithful()


def test_decisions_carry_the_bundle_and_input_digests(
    engine: EmbeddedRegoEngine, make_input: Callable[..., dict[str, Any]]
) -> None:
    policy_input = make_input()

    decision = engine.evaluate(policy_input)

    assert decision.allow
    assert decision.policy_digest == PolicyBundle.load(SHIPPED).digest == engine.digest
    assert decision.input_digest == input_digest(policy_input)
    # The role's cap is part of the decision: the evidence report reads it from the record.
    assert decision.extra == {"rule": "rbac", "max_ttl_seconds": 3600, "conflicts_with": []}
    assert decision.require_approval is False


def test_a_deny_lists_sorted_reasons_and_names_the_deny_rule(
    engine: EmbeddedRegoEngine, make_input: Callable[..., dict[str, Any]]
) -> None:
    decision = engine.evaluate(make_input(role="db-write", ttl=901, target="k8s://prod"))

    assert not decision.allow
    assert list(decision.reasons) == sorted(decision.reasons)
    assert len(decision.reasons) == 2
    assert decision.extra == {"rule": "deny", "max_ttl_seconds": 900}


def test_the_policy_test_runner_passes_the_shipped_directory() -> None:
    results, summary = run_policy_tests(SHIPPED)

    assert all(result.passed for result in results), summary
    assert f"{len(CASES)} passed, 0 failed" in summary
    assert "deny x" in summary
    assert "approver allowed x" in summary
    assert "approver denied x" in summary


def test_the_engine_is_ready(engine: EmbeddedRegoEngine) -> None:
    assert engine.ready()


def test_the_shipped_policy_reads_no_clock_and_calls_nothing_out(shipped_dir: Path) -> None:
    source = (shipped_dir / "grantline.rego").read_text()

    for forbidden in ("time.now_ns", "http.send", "net.", "opa.runtime", "with input as"):
        assert forbidden not in source
