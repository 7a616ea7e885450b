"""``grantline policy check [DIR]``: the policy compiles, passes the engine's load checks, and
calls no built-in that would make its decisions unreplayable."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grantline.cli import exit_codes
from grantline.domain.errors import ConfigError
from grantline.policy.bundle import PolicyBundle
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.policy.rego_scan import UNREPLAYABLE, unsafe_calls


def register(policy_commands: Any) -> None:
    check = policy_commands.add_parser(
        "check",
        help="compile the policy and report unreplayable built-ins",
        description="Loads the policy in DIR as the broker would (it must compile, its "
        "configuration pass the checks, and an empty input be denied) and reports, as "
        "file:line, every call of a built-in whose answer depends on something other than the "
        f"input and data ({', '.join(sorted(UNREPLAYABLE))}). Exit 0 when there is nothing "
        "to report, 1 otherwise.",
    )
    check.add_argument("directory", nargs="?", type=Path, default=Path("policies"))
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    problems = _problems(directory)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{directory}: {len(problems)} problem(s)")
        return exit_codes.DENIED
    print(f"{directory}: compiles, no unreplayable built-ins")
    return exit_codes.OK


def _problems(directory: Path) -> list[str]:
    try:
        bundle = PolicyBundle.load(directory)
    except ConfigError as exc:
        return [exc.message]
    problems = [
        str(call)
        for path, source in sorted(bundle.modules.items())
        for call in unsafe_calls(str(directory / path), source)
    ]
    try:
        EmbeddedRegoEngine(directory)
    except ConfigError as exc:
        problems.append(exc.message)
    return problems
