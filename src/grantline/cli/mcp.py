"""``grantline mcp``: serve the access tools to AI agents over MCP (stdio or streamable HTTP)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from grantline.cli import exit_codes
from grantline.client import EnvTokenSource, FileTokenSource, TokenSource
from grantline.config import ClientSettings

AGENT_TOKEN = "GRANTLINE_AGENT_TOKEN"  # noqa: S105 — a variable name, not a secret
PRINCIPAL_TOKEN = "GRANTLINE_PRINCIPAL_TOKEN"  # noqa: S105 — a variable name, not a secret


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "mcp",
        help="serve access requests to AI agents as MCP tools",
        description="Over stdio the agent's and its principal's tokens come from "
        f"{AGENT_TOKEN} and {PRINCIPAL_TOKEN} (or files named by {AGENT_TOKEN}_FILE and "
        f"{PRINCIPAL_TOKEN}_FILE); over HTTP from each request's Authorization: Bearer and "
        "X-Grantline-Subject-Token headers.",
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    parser.add_argument(
        "--url", help="broker URL (default $GRANTLINE_URL or http://127.0.0.1:8400)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The MCP SDK is imported only by this command: every other command starts without it.
    from grantline.mcp.server import SourceCredentials, run_http, run_stdio  # noqa: PLC0415
    from grantline.mcp.tools import AccessTools  # noqa: PLC0415

    settings = ClientSettings()
    tools = AccessTools((args.url or settings.url).rstrip("/"), timeout=settings.timeout_seconds)
    if args.transport == "http":
        # stdout stays free for the stdio transport; this line is for whoever started it.
        print(f"grantline mcp: serving on http://{args.host}:{args.port}/mcp", file=sys.stderr)
        run_http(tools, args.host, args.port)
    else:
        run_stdio(tools, SourceCredentials(_source(AGENT_TOKEN), _source(PRINCIPAL_TOKEN)))
    return exit_codes.OK


def _source(name: str) -> TokenSource:
    """The file named by ``NAME_FILE`` (read again when it changes), else ``NAME`` itself
    (read at every call): the MCP client that starts this process sets them."""
    path = os.environ.get(f"{name}_FILE")
    return FileTokenSource(path) if path else EnvTokenSource(name)
