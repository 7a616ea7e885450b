"""Commands that act on one request: ``approve``, ``reject``, ``review`` and ``revoke`` (each
``ID --reason TEXT``), ``collect ID``, and ``pending`` (what the caller may approve)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from grantline.cli.http import add_connection_arguments, broker_client, send
from grantline.cli.request import status_to_exit

# command -> (help, the action's path under /v1/access-requests/{id}/)
_WITH_REASON = {
    "approve": ("approve a pending request", "approve"),
    "reject": ("reject a pending request", "reject"),
    "review": ("record the post-incident review of a break-glass grant", "review"),
    "revoke": ("revoke an issued grant", "revoke"),
}


def register(commands: Any) -> None:
    for name, (summary, action) in _WITH_REASON.items():
        parser = commands.add_parser(name, help=summary)
        parser.add_argument("request_id")
        parser.add_argument("--reason", required=True, help="the rationale, recorded")
        add_connection_arguments(parser)
        parser.set_defaults(run=_acting(action))
    collect = commands.add_parser("collect", help="collect an approved credential (once)")
    collect.add_argument("request_id")
    add_connection_arguments(collect)
    collect.set_defaults(run=_collect)
    pending = commands.add_parser("pending", help="list the requests you may approve")
    add_connection_arguments(pending)
    pending.set_defaults(run=_pending)


def _acting(action: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        with broker_client(args) as client:
            response = send(
                client,
                "POST",
                f"/v1/access-requests/{args.request_id}/{action}",
                json={"reason": args.reason},
            )
        return _printed(response)

    return run


def _collect(args: argparse.Namespace) -> int:
    with broker_client(args) as client:
        response = send(client, "GET", f"/v1/access-requests/{args.request_id}/credential")
    return _printed(response)


def _pending(args: argparse.Namespace) -> int:
    with broker_client(args) as client:
        response = send(client, "GET", "/v1/access-requests", params={"status": "pending_approval"})
    return _printed(response)


def _printed(response: Any) -> int:
    print(json.dumps(response.json(), indent=2))
    return status_to_exit(response.status_code)
