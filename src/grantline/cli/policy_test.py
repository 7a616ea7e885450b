"""``grantline policy test [DIR]``: the policy's decision cases through the broker's own
engine, and through the OPA server as well when ``GRANTLINE_OPA_URL`` is set."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grantline.cli import exit_codes
from grantline.config import Settings, opa_engine
from grantline.policy.bundle import TESTS_DIR
from grantline.policy.cases import CaseResult, load_cases, run_cases, run_policy_tests, summarize


def register(policy_commands: Any) -> None:
    test = policy_commands.add_parser(
        "test",
        help="run the policy's decision cases",
        description="Runs the table-driven cases in DIR/tests/*.json through the embedded "
        "engine the broker uses, and also against the OPA server of GRANTLINE_OPA_URL when it "
        "is set. Exit 0 when every case passes on every engine, 1 otherwise.",
    )
    test.add_argument("directory", nargs="?", type=Path, default=Path("policies"))
    test.set_defaults(run=run_test)


def run_test(args: argparse.Namespace) -> int:
    results, summary = run_policy_tests(args.directory)
    print(f"engine: embedded (rego-cpp) over {args.directory}\n{summary}")
    passed = _all_passed(results)
    opa = opa_engine(Settings())
    if opa is not None:
        try:
            cases = load_cases(args.directory / TESTS_DIR)
            opa_results = run_cases(opa, cases)
        finally:
            opa.close()
        print(f"\nengine: OPA server at {opa.url}")
        print(summarize(opa_results, policy_digest=opa.digest))
        embedded_digest = results[0].actual.policy_digest
        if opa.digest != embedded_digest:
            # Cases may pass on both while OPA serves another revision of the policy.
            print(f"note: OPA decides under {opa.digest}, the directory is {embedded_digest}")
        passed = passed and _all_passed(opa_results)
    return exit_codes.OK if passed else exit_codes.DENIED


def _all_passed(results: list[CaseResult]) -> bool:
    return bool(results) and all(r.passed for r in results)
