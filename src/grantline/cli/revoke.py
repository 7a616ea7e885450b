"""``grantline revoke ID --reason TEXT``: revoke a grant at its issuer and record why."""

from __future__ import annotations

import argparse
import json
from typing import Any

from grantline.cli.http import add_connection_arguments, broker_client, send
from grantline.cli.request import status_to_exit


def register(commands: Any) -> None:
    parser = commands.add_parser("revoke", help="revoke an issued grant")
    parser.add_argument("request_id")
    parser.add_argument("--reason", required=True)
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with broker_client(args) as client:
        response = send(
            client,
            "POST",
            f"/v1/access-requests/{args.request_id}/revoke",
            json={"reason": args.reason},
        )
    print(json.dumps(response.json(), indent=2))
    return status_to_exit(response.status_code)
