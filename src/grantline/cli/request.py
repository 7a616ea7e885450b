"""``grantline request``: ask a broker for access and print its JSON answer."""

from __future__ import annotations

import argparse
import json
from typing import Any

from grantline.cli import exit_codes
from grantline.cli.http import add_connection_arguments, broker_client, send


def register(commands: Any) -> None:
    parser = commands.add_parser("request", help="ask a broker for access")
    parser.add_argument("--target", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--ttl", type=int, required=True, help="seconds")
    parser.add_argument("--type", default="jwt", dest="credential_type", help="credential type")
    parser.add_argument("--purpose", default="")
    parser.add_argument("--ticket", default="")
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
    with broker_client(args) as client:
        response = send(client, "POST", "/v1/access-requests", json=body)
    print(json.dumps(response.json(), indent=2))
    return status_to_exit(response.status_code)


def status_to_exit(status: int) -> int:
    if status < 300:
        return exit_codes.OK
    if status == 403:
        return exit_codes.DENIED
    if status == 503:
        return exit_codes.UNAVAILABLE
    return exit_codes.USAGE
