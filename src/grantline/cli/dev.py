"""``grantline dev token``: caller identity tokens from the dev issuer in GRANTLINE_HOME."""

from __future__ import annotations

import argparse
from typing import Any

from grantline.cli import exit_codes
from grantline.config import Settings, dev_issuer
from grantline.domain.errors import InvalidRequestError


def register(commands: Any) -> None:
    parser = commands.add_parser("dev", help="development helpers")
    dev_commands = parser.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")
    token = dev_commands.add_parser("token", help="print an identity JWT from the dev issuer")
    token.add_argument("--subject", required=True, help="the subject (sub) of the token")
    token.add_argument(
        "--claim", action="append", default=[], metavar="K=V", help="an extra claim (repeatable)"
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(run=run_token)


def run_token(args: argparse.Namespace) -> int:
    if args.ttl < 1:
        raise InvalidRequestError("--ttl must be at least 1 second")
    claims = dict(_claim(text) for text in args.claim)
    print(dev_issuer(Settings()).mint(args.subject, ttl_seconds=args.ttl, claims=claims))
    return exit_codes.OK


def _claim(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidRequestError(f"--claim takes KEY=VALUE, got {text!r}")
    return key, value
