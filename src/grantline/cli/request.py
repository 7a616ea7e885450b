"""``grantline request``: ask a broker for access and print its JSON answer."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from grantline.cli import exit_codes
from grantline.cli.http import add_connection_arguments, broker_client, send
from grantline.domain.errors import ConfigError


def register(commands: Any) -> None:
    parser = commands.add_parser("request", help="ask a broker for access")
    parser.add_argument("--target", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--ttl", type=int, required=True, help="seconds")
    parser.add_argument("--type", default="jwt", dest="credential_type", help="credential type")
    parser.add_argument("--purpose", default="")
    parser.add_argument("--ticket", default="")
    parser.add_argument("--break-glass", action="store_true", help="emergency access")
    parser.add_argument("--justification", default="", help="why (required for break-glass)")
    parser.add_argument(
        "--subject-token", help="an agent acting for someone: the token of that principal"
    )
    parser.add_argument("--goal", default="", help="an agent's goal, recorded")
    parser.add_argument(
        "--public-key", type=Path, help="file with a public JWK the JWT is to be bound to"
    )
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    body = {
        "target": args.target,
        "role": args.role,
        "ttl_seconds": args.ttl,
        "credential_type": args.credential_type,
        "purpose": args.purpose,
        "ticket": args.ticket,
    }
    if args.break_glass:
        body |= {"break_glass": True, "justification": args.justification}
    if args.subject_token:
        body |= {"subject_token": args.subject_token, "agent": {"goal": args.goal}}
    if args.public_key:
        body["public_key"] = _read_jwk(args.public_key)
    with broker_client(args) as client:
        response = send(client, "POST", "/v1/access-requests", json=body)
    print(json.dumps(response.json(), indent=2))
    return status_to_exit(response.status_code)


def _read_jwk(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read a JWK from {path}: {exc}") from exc


def status_to_exit(status: int) -> int:
    if status < 300:
        return exit_codes.OK
    if status == 403:
        return exit_codes.DENIED
    if status == 503:
        return exit_codes.UNAVAILABLE
    return exit_codes.USAGE
