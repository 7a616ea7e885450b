"""The MCP server: the tools of :mod:`grantline.mcp.tools`, exposed with the ``mcp`` SDK over
stdio or streamable HTTP. The only module of Grantline that imports ``mcp``.

Whose tokens a call acts with depends on the transport: over stdio, the process's own token
sources (one agent per process); over HTTP, the headers of each MCP request (any number of
agents), never the tool's arguments, so that a token never passes through the model.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Protocol

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from grantline import __version__
from grantline.client import GrantlineClientError, OutcomeResult, TokenSource
from grantline.mcp.tools import (
    AccessAnswer,
    AccessArguments,
    AccessTools,
    CredentialKind,
    Delegation,
    OutcomeAnswer,
    RevocationAnswer,
    ToolRefusedError,
)

SUBJECT_TOKEN_HEADER = "X-Grantline-Subject-Token"  # noqa: S105 — a header name
INSTRUCTIONS = (
    "Ask Grantline for short-lived access before acting on a system: request_access names "
    "the target, role, TTL and why. Share your goal, the tool you will use and the SHA-256 "
    "digest of the prompt you act on (never the prompt). Afterwards report_outcome says what "
    "you changed, and revoke_access ends the grant early. Every step is recorded and signed."
)


class Credentials(Protocol):
    """Where a tool call's tokens come from."""

    def delegation(self, ctx: Context, *, principal: bool) -> Delegation:
        """The agent's token, and the principal's when ``principal``. Raises ToolRefusedError."""
        ...


class SourceCredentials:
    """Tokens from token sources (stdio: environment variables or files), read at each call
    so that a rotated token is used at once."""

    def __init__(self, agent: TokenSource, principal: TokenSource) -> None:
        self._agent = agent
        self._principal = principal

    def delegation(self, ctx: Context, *, principal: bool) -> Delegation:
        try:
            agent_token = self._agent.token()
            principal_token = self._principal.token() if principal else None
        except GrantlineClientError as exc:  # the source's message names where it looked
            raise ToolRefusedError(exc.message) from None
        return Delegation(agent_token, principal_token)


class HeaderCredentials:
    """Tokens from the HTTP request carrying the call: ``Authorization: Bearer`` is the
    agent, ``X-Grantline-Subject-Token`` its principal. The broker verifies both."""

    def delegation(self, ctx: Context, *, principal: bool) -> Delegation:
        headers = ctx.headers or {}
        scheme, _, agent_token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not agent_token.strip():
            raise ToolRefusedError(
                "no agent identity: send Authorization: Bearer <the agent's identity token> "
                "with every MCP request"
            )
        principal_token = headers.get(SUBJECT_TOKEN_HEADER.lower(), "").strip() or None
        if principal and principal_token is None:
            raise ToolRefusedError(
                f"no principal token: send the token of the principal you act for in the "
                f"{SUBJECT_TOKEN_HEADER} header"
            )
        return Delegation(agent_token.strip(), principal_token)


def build_server(tools: AccessTools, credentials: Credentials) -> MCPServer[Any]:
    """The MCP server with the four tools, acting with ``credentials``."""
    server: MCPServer[Any] = MCPServer(
        "grantline", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    async def request_access(
        *,
        target: Annotated[str, Field(description="what to access, e.g. postgres://orders-db")],
        role: Annotated[str, Field(description="the role to hold on it, e.g. db-read")],
        ttl_seconds: Annotated[int, Field(description="how long, in seconds; ask for little")],
        purpose: Annotated[str, Field(description="why, for the people reading the log")],
        goal: Annotated[str, Field(description="the goal your principal gave you")],
        ctx: Context,
        tool_name: Annotated[
            str | None, Field(description="the tool that will use the access")
        ] = None,
        prompt_sha256: Annotated[
            str | None,
            Field(description="SHA-256 hex digest of the prompt you act on (never the prompt)"),
        ] = None,
        credential_type: CredentialKind = "jwt",
    ) -> AccessAnswer:
        """Ask for short-lived access on behalf of your principal. Answers the credential
        when issued, the missing approvals when pending, the policy's reasons when denied."""
        args = AccessArguments(
            target, role, ttl_seconds, purpose, goal, tool_name, prompt_sha256, credential_type
        )
        with _refusals_as_tool_errors():
            who = credentials.delegation(ctx, principal=True)
            return await tools.request_access(who, args)

    async def check_request(request_id: str, ctx: Context) -> AccessAnswer:
        """Where a request stands; once approved, collects its credential (handed out once)."""
        with _refusals_as_tool_errors():
            who = credentials.delegation(ctx, principal=False)
            return await tools.check_request(who, request_id)

    async def report_outcome(
        *,
        request_id: str,
        action: Annotated[str, Field(description="what you did with the access")],
        result: OutcomeResult,
        ctx: Context,
        changed: Annotated[
            list[str] | None, Field(description="what it changed (up to 32 names)")
        ] = None,
        summary: Annotated[str | None, Field(description="a short account of it")] = None,
    ) -> OutcomeAnswer:
        """Report the outcome of the action an issued grant served; it is recorded on the
        request's lineage."""
        with _refusals_as_tool_errors():
            who = credentials.delegation(ctx, principal=False)
            return await tools.report_outcome(
                who, request_id, action, result, changed=changed or (), summary=summary
            )

    async def revoke_access(request_id: str, reason: str, ctx: Context) -> RevocationAnswer:
        """Revoke a grant you no longer need (harmless if it is revoked already)."""
        with _refusals_as_tool_errors():
            who = credentials.delegation(ctx, principal=False)
            return await tools.revoke_access(who, request_id, reason)

    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
    for tool, hints in (
        (request_access, writes),
        (check_request, ToolAnnotations(read_only_hint=False, idempotent_hint=False)),
        (report_outcome, writes),
        (revoke_access, ToolAnnotations(destructive_hint=True, idempotent_hint=True)),
    ):
        server.add_tool(
            tool,
            description=inspect.getdoc(tool),  # the docstring without its indentation
            annotations=hints,
            structured_output=True,
        )
    return server


@contextmanager
def _refusals_as_tool_errors() -> Iterator[None]:
    """A refusal becomes an MCP tool error carrying its message alone: no trace, no token.
    Anything else is a crash, whose text the SDK keeps in the server's log."""
    try:
        yield
    except ToolRefusedError as exc:
        raise ToolError(exc.message) from None


def run_stdio(tools: AccessTools, credentials: Credentials) -> None:
    """Serve one agent over stdin/stdout until the client closes them."""
    anyio.run(build_server(tools, credentials).run_stdio_async)


def run_http(tools: AccessTools, host: str, port: int) -> None:
    """Serve agents over streamable HTTP at ``http://HOST:PORT/mcp``. On a loopback host the
    SDK refuses requests whose ``Host`` or ``Origin`` is not loopback (DNS rebinding)."""
    server = build_server(tools, HeaderCredentials())

    async def serve() -> None:
        await server.run_streamable_http_async(host=host, port=port)

    anyio.run(serve)
