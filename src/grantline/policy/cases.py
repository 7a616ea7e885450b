"""Table-driven policy tests: cases (input -> expected answer) run through an engine's
decision or approval entrypoint."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grantline.domain.errors import ConfigError
from grantline.domain.models import Decision
from grantline.policy.bundle import TESTS_DIR
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.policy.engine import PolicyEngine

_EXPECT_KEYS = frozenset(
    {
        "allow",
        "reasons_include",
        "rule",
        "require_approval",
        "groups",
        "break_glass",
        "approval",
        "conflicts_with",
    }
)
# Expectations compared as they are with the same key of Decision.extra.
_EXTRA_KEYS = ("rule", "groups", "approval", "conflicts_with")
DECISION = "decision"
APPROVAL = "approval"
_ENTRYPOINTS = frozenset({DECISION, APPROVAL})
_CASE_KEYS = frozenset({"name", "entrypoint", "input", "expect"})


@dataclass(frozen=True, slots=True)
class DecisionCase:
    name: str
    input: Mapping[str, Any]
    expect: Mapping[str, Any]
    source: str = ""
    entrypoint: str = DECISION


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    passed: bool
    expected: Mapping[str, Any]
    actual: Decision
    message: str = ""
    source: str = field(default="", compare=False)
    entrypoint: str = DECISION


def load_cases(path: Path) -> list[DecisionCase]:
    """The cases in a file, or in every ``*.json`` of a directory (sorted by name).

    A case file is a JSON list of ``{"name", "input", "expect"}`` and an optional
    ``"entrypoint"``: ``"decision"`` (the default) or ``"approval"``. ``expect`` holds
    ``allow`` and optionally ``reasons_include`` (substrings each found in some reason),
    ``require_approval``, ``break_glass`` (false when the answer has none), and ``rule``,
    ``groups`` and ``approval``, each compared exactly with the answer's own. Cases stand in
    for Rego ``test_*`` rules, which would need ``with input as``, on which regopy 1.3-1.5
    crash. Raises :class:`ConfigError` for an unreadable or malformed file or a repeated
    case name.
    """
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    cases = [case for file in files for case in _load_file(file)]
    repeated = [name for name, n in Counter(c.name for c in cases).items() if n > 1]
    if repeated:
        raise ConfigError(f"decision cases in {path} repeat the names {sorted(repeated)}")
    return cases


def run_cases(engine: PolicyEngine, cases: Iterable[DecisionCase]) -> list[CaseResult]:
    """Evaluate every case through ``engine.evaluate`` or ``engine.evaluate_approval``, the
    paths the broker uses."""
    return [_run(engine, case) for case in cases]


def run_policy_tests(directory: Path) -> tuple[list[CaseResult], str]:
    """Load the policy in ``directory`` and run the cases in ``directory/tests/*.json``.

    Returns the results and a printable summary. Raises :class:`ConfigError` when the
    policy or the cases cannot be loaded, or when there is no case at all.
    """
    engine = EmbeddedRegoEngine(directory)
    cases = load_cases(directory / TESTS_DIR) if (directory / TESTS_DIR).is_dir() else []
    if not cases:
        raise ConfigError(f"no decision cases in {directory / TESTS_DIR}/*.json")
    results = run_cases(engine, cases)
    return results, summarize(results, policy_digest=engine.digest)


def summarize(results: Sequence[CaseResult], *, policy_digest: str = "") -> str:
    """Failures first, then totals and which rules and reasons the cases exercised."""
    failed = [r for r in results if not r.passed]
    lines = [f"FAIL {r.name} ({r.source}): {r.message}" for r in failed]
    lines.append(f"{len(results) - len(failed)} passed, {len(failed)} failed ({policy_digest})")
    rules = Counter(_rule_exercised(r) for r in results)
    lines.append("rules: " + ", ".join(f"{rule} x{n}" for rule, n in sorted(rules.items())))
    reasons = Counter(reason for r in results for reason in r.actual.reasons)
    lines.append(f"reasons ({len(reasons)} distinct):")
    lines += [f"  {n:3d}  {_printable(reason)}" for reason, n in sorted(reasons.items())]
    return "\n".join(lines)


def _rule_exercised(result: CaseResult) -> str:
    if result.entrypoint == APPROVAL:
        # Every approval answer names the rule "approval"; what it decided tells cases apart.
        return "approver allowed" if result.actual.allow else "approver denied"
    return str(result.actual.extra.get("rule", "-"))


def _printable(text: str) -> str:
    # Reasons quote what callers sent, control characters included: never echo those raw.
    return text if text.isprintable() else json.dumps(text)[1:-1]


def _run(engine: PolicyEngine, case: DecisionCase) -> CaseResult:
    if case.entrypoint == APPROVAL:
        decision = engine.evaluate_approval(case.input)
    else:
        decision = engine.evaluate(case.input)
    problems = _mismatches(case.expect, decision)
    return CaseResult(
        name=case.name,
        passed=not problems,
        expected=case.expect,
        actual=decision,
        message="; ".join(problems),
        source=case.source,
        entrypoint=case.entrypoint,
    )


def _mismatches(expect: Mapping[str, Any], decision: Decision) -> list[str]:
    problems = []
    if decision.allow is not expect["allow"]:
        problems.append(f"expected allow={expect['allow']}, got {decision.allow}")
    for fragment in expect.get("reasons_include", []):
        if not any(fragment in reason for reason in decision.reasons):
            problems.append(f"no reason contains {fragment!r}")
    for key in _EXTRA_KEYS:
        if key in expect and decision.extra.get(key) != expect[key]:
            problems.append(f"expected {key} {expect[key]!r}, got {decision.extra.get(key)!r}")
    wanted = expect.get("require_approval")
    if wanted is not None and decision.require_approval is not wanted:
        problems.append(f"expected require_approval={wanted}")
    glass = expect.get("break_glass")
    if glass is not None and decision.extra.get("break_glass", False) is not glass:
        problems.append(f"expected break_glass={glass}")
    if problems:
        problems.append(f"reasons were {list(decision.reasons)}")
    return problems


def _load_file(file: Path) -> list[DecisionCase]:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read decision cases from {file}: {exc}") from exc
    if not isinstance(document, list):
        raise ConfigError(f"{file} must hold a JSON list of cases")
    return [_case(file, position, entry) for position, entry in enumerate(document)]


def _case(file: Path, position: int, entry: Any) -> DecisionCase:
    where = f"{file} case {position}"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"{where} must be an object with a string name")
    unknown_keys = set(entry) - _CASE_KEYS
    if unknown_keys:
        raise ConfigError(f"{where} ({entry['name']}) has unknown keys {sorted(unknown_keys)}")
    if not isinstance(entry.get("input"), dict):
        raise ConfigError(f"{where} ({entry['name']}) needs an input object")
    expect = entry.get("expect")
    if not isinstance(expect, dict) or not isinstance(expect.get("allow"), bool):
        raise ConfigError(f"{where} ({entry['name']}) needs expect.allow, a boolean")
    unknown = set(expect) - _EXPECT_KEYS
    if unknown:
        # A misspelt expectation would otherwise pass silently.
        raise ConfigError(f"{where} ({entry['name']}) has unknown expectations {sorted(unknown)}")
    fragments = expect.get("reasons_include", [])
    if not isinstance(fragments, list) or not all(isinstance(f, str) for f in fragments):
        raise ConfigError(f"{where} ({entry['name']}): reasons_include must list strings")
    for key in ("require_approval", "break_glass"):
        if not isinstance(expect.get(key, False), bool):
            raise ConfigError(f"{where} ({entry['name']}): expect.{key} must be a boolean")
    entrypoint = entry.get("entrypoint", DECISION)
    if not isinstance(entrypoint, str) or entrypoint not in _ENTRYPOINTS:
        raise ConfigError(
            f"{where} ({entry['name']}): entrypoint must be one of {sorted(_ENTRYPOINTS)}"
        )
    return DecisionCase(entry["name"], entry["input"], expect, file.name, entrypoint)
