"""``grantline policy test [DIR]``: the table-driven policy cases, through the broker's engine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grantline.cli import exit_codes, replay
from grantline.policy.cases import run_policy_tests


def register(commands: Any) -> None:
    parser = commands.add_parser("policy", help="work with the Rego policies")
    policy_commands = parser.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    test = policy_commands.add_parser("test", help="run the policy's decision cases")
    test.add_argument("directory", nargs="?", type=Path, default=Path("policies"))
    test.set_defaults(run=run_test)
    replay.register(policy_commands)


def run_test(args: argparse.Namespace) -> int:
    results, summary = run_policy_tests(args.directory)
    print(summary)
    return exit_codes.OK if results and all(r.passed for r in results) else exit_codes.DENIED
