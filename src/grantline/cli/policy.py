"""``grantline policy``: test, check, evaluate, bundle and replay the Rego policies."""

from __future__ import annotations

from typing import Any

from grantline.cli import policy_bundle, policy_check, policy_eval, policy_test, replay


def register(commands: Any) -> None:
    parser = commands.add_parser("policy", help="work with the Rego policies")
    policy_commands = parser.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    for module in (policy_test, policy_check, policy_eval, policy_bundle):
        module.register(policy_commands)
    replay.register(policy_commands)
