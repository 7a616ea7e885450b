"""Decision cases load strictly and compare an engine's decisions with what they expect."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from grantline.domain.errors import ConfigError
from grantline.domain.models import Decision
from grantline.policy import (
    DecisionCase,
    load_cases,
    parse_approval,
    parse_decision,
    run_cases,
    summarize,
)


class TableEngine:
    """A PolicyEngine double: answers by the request's role, through parse_decision."""

    digest = "sha256:table"

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self._answers = answers

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        raw = self._answers.get(policy_input.get("role", ""))
        return parse_decision(raw, policy_digest=self.digest, input_digest="sha256:in")

    def evaluate_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        raw = self._answers.get("approver " + approval_input.get("approver", ""))
        return parse_approval(raw, policy_digest=self.digest, input_digest="sha256:in")

    def ready(self) -> bool:
        return True


ENGINE = TableEngine(
    {
        "ok": {"allow": True, "reasons": [], "rule": "rbac"},
        "no": {
            "allow": False,
            "reasons": ["ttl_seconds 901 exceeds the cap of 900"],
            "rule": "deny",
        },
        "approve": {"allow": True, "reasons": [], "require_approval": True},
        "glass": {"allow": True, "reasons": [], "break_glass": True, "rule": "break_glass"},
        "approver sam": {"allow": True, "reasons": [], "groups": ["security"], "rule": "approval"},
        "approver eve": {
            "allow": False,
            "reasons": ["approver eve is in none of the required groups: security"],
            "groups": [],
            "rule": "approval",
        },
    }
)


def case(name: str, role: str, **expect: Any) -> DecisionCase:
    return DecisionCase(name=name, input={"role": role}, expect=expect)


def write_cases(path: Path, entries: Any) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_a_case_passes_when_allow_and_every_expectation_match() -> None:
    [result] = run_cases(
        ENGINE, [case("c", "no", allow=False, reasons_include=["cap of 900"], rule="deny")]
    )

    assert result.passed
    assert result.message == ""
    assert result.actual.reasons == ("ttl_seconds 901 exceeds the cap of 900",)


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        (case("c", "ok", allow=False), "expected allow=False, got True"),
        (case("c", "no", allow=False, reasons_include=["cap of 60"]), "no reason contains"),
        (case("c", "ok", allow=True, rule="sod"), "expected rule 'sod'"),
        (case("c", "ok", allow=True, require_approval=True), "require_approval=True"),
        (case("c", "missing", allow=True), "expected allow=True, got False"),
    ],
)
def test_a_case_fails_saying_what_differed(expected: DecisionCase, message: str) -> None:
    [result] = run_cases(ENGINE, [expected])

    assert not result.passed
    assert message in result.message


def test_require_approval_is_checked_when_expected() -> None:
    [result] = run_cases(ENGINE, [case("c", "approve", allow=True, require_approval=True)])

    assert result.passed


def test_cases_load_from_a_file_or_every_json_file_of_a_directory(tmp_path: Path) -> None:
    write_cases(tmp_path / "b.json", [{"name": "b", "input": {}, "expect": {"allow": False}}])
    write_cases(tmp_path / "a.json", [{"name": "a", "input": {}, "expect": {"allow": True}}])

    assert [c.name for c in load_cases(tmp_path)] == ["a", "b"]
    assert [c.source for c in load_cases(tmp_path / "b.json")] == ["b.json"]


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({"name": "x"}, "JSON list"),
        (["x"], "string name"),
        ([{"name": "x", "expect": {"allow": True}}], "input object"),
        ([{"name": "x", "input": {}, "expect": {}}], "expect.allow"),
        ([{"name": "x", "input": {}, "expect": {"allow": "yes"}}], "expect.allow"),
        ([{"name": "x", "input": {}, "expect": {"allow": True, "reason": "a"}}], "unknown"),
        (
            [{"name": "x", "input": {}, "expect": {"allow": True, "reasons_include": "a"}}],
            "reasons_include",
        ),
        (
            [
                {"name": "x", "input": {}, "expect": {"allow": True}},
                {"name": "x", "input": {}, "expect": {"allow": False}},
            ],
            "repeat",
        ),
    ],
)
def test_malformed_case_files_are_refused(tmp_path: Path, entries: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_cases(write_cases(tmp_path / "cases.json", entries))


def test_a_case_file_that_is_not_json_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "cases.json").write_text("[{")

    with pytest.raises(ConfigError, match=r"cases\.json"):
        load_cases(tmp_path / "cases.json")


def test_the_summary_lists_failures_totals_rules_and_reasons() -> None:
    results = run_cases(
        ENGINE,
        [
            case("good", "ok", allow=True),
            case("bad", "no", allow=True),
            case("n", "no", allow=False),
        ],
    )

    summary = summarize(results, policy_digest="sha256:table")

    assert summary.splitlines()[0].startswith("FAIL bad")
    assert "2 passed, 1 failed (sha256:table)" in summary
    assert "rules: deny x2, rbac x1" in summary
    assert "2  ttl_seconds 901 exceeds the cap of 900" in summary


def approver_case(name: str, approver: str, **expect: Any) -> DecisionCase:
    return DecisionCase(name, {"approver": approver}, expect, entrypoint="approval")


def test_approval_cases_run_through_the_approval_entrypoint() -> None:
    results = run_cases(
        ENGINE,
        [
            approver_case("sam", "sam", allow=True, groups=["security"], rule="approval"),
            approver_case("eve", "eve", allow=False, groups=[], reasons_include=["none of"]),
        ],
    )

    assert [r.passed for r in results] == [True, True]
    assert [r.entrypoint for r in results] == ["approval", "approval"]


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        (approver_case("c", "sam", allow=True, groups=["oncall"]), "expected groups ['oncall']"),
        (approver_case("c", "sam", allow=True, groups=[]), "expected groups []"),
        (case("c", "glass", allow=True, break_glass=False), "expected break_glass=False"),
        (case("c", "ok", allow=True, break_glass=True), "expected break_glass=True"),
        (case("c", "approve", allow=True, approval={"all_of": []}), "expected approval"),
    ],
)
def test_groups_break_glass_and_approval_expectations_are_compared(
    expected: DecisionCase, message: str
) -> None:
    [result] = run_cases(ENGINE, [expected])

    assert not result.passed
    assert message in result.message


def test_break_glass_is_false_when_the_answer_has_none() -> None:
    results = run_cases(
        ENGINE,
        [
            case("plain", "ok", allow=True, break_glass=False),
            case("glass", "glass", allow=True, break_glass=True, rule="break_glass"),
        ],
    )

    assert all(r.passed for r in results)


def test_a_case_file_may_name_the_approval_entrypoint(tmp_path: Path) -> None:
    entries = [
        {"name": "a", "entrypoint": "approval", "input": {}, "expect": {"allow": False}},
        {"name": "d", "input": {}, "expect": {"allow": False}},
    ]

    cases = load_cases(write_cases(tmp_path / "cases.json", entries))

    assert [c.entrypoint for c in cases] == ["approval", "decision"]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"entrypoint": "allow"}, "entrypoint must be one of"),
        ({"entrypoint": None}, "entrypoint must be one of"),
        ({"entrypoint": ["approval"]}, "entrypoint must be one of"),
        ({"entrypint": "approval"}, r"unknown keys \['entrypint'\]"),
        ({"expect": {"allow": True, "break_glass": "yes"}}, "expect.break_glass"),
        ({"expect": {"allow": True, "require_approval": 1}}, "expect.require_approval"),
    ],
)
def test_malformed_entrypoints_and_expectations_are_refused(
    tmp_path: Path, entry: dict[str, Any], problem: str
) -> None:
    entries = [{"name": "x", "input": {}, "expect": {"allow": True}, **entry}]

    with pytest.raises(ConfigError, match=problem):
        load_cases(write_cases(tmp_path / "cases.json", entries))


def test_the_summary_counts_approval_answers_by_what_they_decided() -> None:
    results = run_cases(
        ENGINE,
        [
            approver_case("sam", "sam", allow=True),
            approver_case("eve", "eve", allow=False),
            case("ok", "ok", allow=True),
        ],
    )

    assert "rules: approver allowed x1, approver denied x1, rbac x1" in summarize(results)
