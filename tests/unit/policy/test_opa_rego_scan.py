"""Reading Rego without an AST: unreplayable built-ins found at their line, never in comments,
strings or other references; packages read for the bundle roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from grantline.policy.rego_scan import UNREPLAYABLE, package_of, references, unsafe_calls

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def found(source: str) -> list[tuple[int, str]]:
    return [(call.line, call.builtin) for call in unsafe_calls("p.rego", source)]


@pytest.mark.parametrize("builtin", sorted(UNREPLAYABLE))
def test_each_unreplayable_builtin_is_reported(builtin: str) -> None:
    assert found(f"package p\n\nx := {builtin}(1)\n") == [(3, builtin)]


def test_the_report_says_file_line_and_why() -> None:
    (call,) = unsafe_calls("policies/a.rego", "package p\nt := time.now_ns()\n")

    assert str(call) == (
        "policies/a.rego:2: time.now_ns reads the clock (the broker puts the time in input.now)"
    )


def test_comments_strings_and_raw_strings_are_not_code() -> None:
    source = (
        "package p\n"
        "# http.send({}) in a comment\n"
        'a := "http.send(x) and \\"time.now_ns()\\" in a string"\n'
        "b := `raw\nhttp.send\nstring`  # time.now_ns\n"
        'c := rand.intn("x", 10)\n'
    )

    assert found(source) == [(7, "rand.intn")]


def test_references_that_continue_another_are_not_builtins() -> None:
    source = "package p\na := input.http.send\nb := x[0].time.now_ns\nc := data.opa.runtime\n"

    assert found(source) == []


def test_with_replacing_a_builtin_is_reported() -> None:
    assert found("package p\nallow if { f with http.send as mock }\n") == [(2, "http.send")]


def test_numbers_are_read_whole() -> None:
    assert [r.name for r in references("x := 1.5e3 + y.z")] == ["x", "y.z"]


def test_the_shipped_policy_calls_no_unreplayable_builtin() -> None:
    for path in POLICIES.glob("*.rego"):
        assert unsafe_calls(path.name, path.read_text()) == []


def test_the_package_is_read() -> None:
    assert package_of("# package nope\npackage a.b.c\n\nimport rego.v1\n") == "a.b.c"
    assert package_of("x := 1\n") is None
    assert package_of((POLICIES / "grantline.rego").read_text()) == "grantline"
