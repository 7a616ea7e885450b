"""``grantline reconcile``: one reconciliation pass on the broker, now (operators only)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from grantline.cli import exit_codes
from grantline.cli.http import add_connection_arguments, broker_client, send
from grantline.cli.request import status_to_exit


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "reconcile", help="compare the log with the issuers now and record what differs"
    )
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with broker_client(args) as client:
        response = send(client, "POST", "/v1/reconcile")
    report = response.json()
    print(json.dumps(report, indent=2))
    if response.status_code >= 300:
        return status_to_exit(response.status_code)
    # Findings are what an operator must look at: exit 1, like a denied request.
    return exit_codes.DENIED if report.get("findings") else exit_codes.OK
