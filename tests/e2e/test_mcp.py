"""``grantline mcp`` driven by the ``mcp`` SDK's own client, over stdio and streamable HTTP:
an agent asks for access for its principal as a tool call, reports the outcome, revokes, and
the exported lineage verifies with every step, from the prompt digest to the revocation."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent
from tests.conftest import GRANTLINE, Served, export, free_port, serve, verify

pytestmark = pytest.mark.e2e

AGENT = "spiffe://example.org/agents/planner"
ALICE = "user:alice"
RESOURCE_SERVER = "spiffe://example.org/resource-server"
TARGET = "postgres://orders-db"
PROMPT = "Summarise my orders of last week and mark the late ones."
PROMPT_SHA256 = hashlib.sha256(PROMPT.encode()).hexdigest()
ASK = {
    "target": TARGET,
    "role": "db-read",
    "ttl_seconds": 300,
    "purpose": "weekly order summary for alice",
    "goal": "summarise alice's orders of last week",
    "tool_name": "sql.query",
    "prompt_sha256": PROMPT_SHA256,
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    # A one-second usage window, so that the credential's use is recorded within the test.
    broker = serve(tmp_path / "home", extra_env={"GRANTLINE_USAGE_WINDOW_SECONDS": "1"})
    yield broker
    broker.stop()


@asynccontextmanager
async def over_stdio(served: Served, **tokens: str) -> AsyncIterator[ClientSession]:
    """``grantline mcp`` as a subprocess, its tokens in the environment its MCP client sets."""
    env = {**served.env, **tokens}
    params = StdioServerParameters(command=GRANTLINE, args=["mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def agent_env(served: Served, principal: str | None = ALICE) -> dict[str, str]:
    env = {"GRANTLINE_AGENT_TOKEN": served.token(AGENT)}
    if principal:
        env["GRANTLINE_PRINCIPAL_TOKEN"] = served.token(principal)
    return env


def text_of(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


def answer_of(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


def auditor_get(served: Served, path: str, **params: Any) -> Any:
    with served.client("user:auditor") as client:
        response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_use(served: Served, request_id: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = auditor_get(served, f"/v1/access-requests/{request_id}/lineage")["records"]
        if any(r["event"] == "used" for r in records):
            return
        time.sleep(0.3)
    raise AssertionError(f"no used record for {request_id}")


async def test_an_agent_asks_reports_and_revokes_over_stdio_and_the_lineage_has_every_step(
    served: Served, tmp_path: Path
) -> None:
    async with over_stdio(served, **agent_env(served)) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert {"request_access", "check_request", "report_outcome", "revoke_access"} <= set(tools)
        assert "prompt_sha256" in tools["request_access"].input_schema["properties"]

        issued = answer_of(await session.call_tool("request_access", ASK))
        assert issued["status"] == "issued"
        request_id, credential = issued["request_id"], issued["credential"]
        assert credential["type"] == "jwt"
        assert credential["expires_at"]
        claims = jwt.decode(credential["token"], options={"verify_signature": False})
        assert (claims["sub"], claims["act"], claims["aud"]) == (ALICE, {"sub": AGENT}, TARGET)

        # The agent uses the credential: the resource server checks it with the broker.
        with served.client(RESOURCE_SERVER) as resource_server:
            active = resource_server.post("/v1/introspect", json={"token": credential["token"]})
        assert active.json()["active"] is True
        wait_for_use(served, request_id)

        reported = answer_of(
            await session.call_tool(
                "report_outcome",
                {
                    "request_id": request_id,
                    "action": "summarised the orders of week 47",
                    "result": "succeeded",
                    "changed": ["orders.late_flag for 3 orders"],
                    "summary": "412 orders read, 3 marked late",
                },
            )
        )
        assert reported["event"] == "outcome"
        assert isinstance(reported["seq"], int)

        revoked = answer_of(
            await session.call_tool(
                "revoke_access", {"request_id": request_id, "reason": "task done"}
            )
        )
        assert (revoked["status"], revoked["already"]) == ("revoked", False)

    lines = export(served, tmp_path / "export.jsonl")
    code, output = verify(served, tmp_path / "export.jsonl")
    assert code == 0, output
    records = [json.loads(line) for line in lines]
    lineage = [r for r in records if r.get("request_id") == request_id]
    assert [r["event"] for r in lineage] == [
        "requested",
        "evaluated",
        "approved",
        "issued",
        "used",
        "outcome",
        "revoked",
    ]
    requested = lineage[0]["data"]
    assert requested["request"]["agent"] == {
        "on_behalf_of": ALICE,
        "goal": ASK["goal"],
        "tool": "sql.query",
        "prompt_sha256": PROMPT_SHA256,
    }
    assert requested["identity"]["subject"] == ALICE
    assert requested["actor"]["subject"] == AGENT
    assert PROMPT not in (tmp_path / "export.jsonl").read_text()
    assert lineage[1]["data"]["decision"]["allow"] is True
    assert lineage[4]["data"]["operations"] == {"introspect": 1}
    outcome = lineage[5]["data"]
    assert outcome["by"] == AGENT
    assert outcome["result"] == "succeeded"
    assert outcome["changed"] == ["orders.late_flag for 3 orders"]
    assert lineage[6]["data"]["reason"] == "task done"


async def test_a_denial_answers_the_policys_reasons_and_a_bad_digest_is_never_sent(
    served: Served,
) -> None:
    asked_before = len(auditor_get(served, "/v1/records", event="requested")["records"])
    async with over_stdio(served, **agent_env(served)) as session:
        prompt_as_digest = await session.call_tool(
            "request_access", {**ASK, "prompt_sha256": PROMPT}
        )
        assert prompt_as_digest.is_error
        assert "64 hex characters" in text_of(prompt_as_digest)
        assert PROMPT not in text_of(prompt_as_digest)
        assert len(auditor_get(served, "/v1/records", event="requested")["records"]) == asked_before

        # Neither the planner agent nor alice is bound to db-write.
        denied = answer_of(await session.call_tool("request_access", {**ASK, "role": "db-write"}))
        assert denied["status"] == "denied"
        assert any("not bound to role db-write" in reason for reason in denied["reasons"])
        assert "credential" not in denied

        nothing_issued = await session.call_tool(
            "report_outcome",
            {"request_id": denied["request_id"], "action": "none", "result": "failed"},
        )
        assert nothing_issued.is_error
        assert "nothing was issued" in text_of(nothing_issued)
        for result in (prompt_as_digest, nothing_issued):
            assert served.token(AGENT) not in text_of(result)
            assert "Traceback" not in text_of(result)

    async with over_stdio(served, **agent_env(served, principal=None)) as session:
        alone = await session.call_tool("request_access", ASK)
        assert alone.is_error
        assert "GRANTLINE_PRINCIPAL_TOKEN" in text_of(alone)


@pytest.fixture
def mcp_http(served: Served, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with (tmp_path / "mcp.log").open("wb") as log:
        process = subprocess.Popen(
            [GRANTLINE, "mcp", "--transport", "http", "--port", str(port)],
            env=served.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert served.token(AGENT) not in (tmp_path / "mcp.log").read_text()


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("grantline mcp --transport http exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise AssertionError("grantline mcp --transport http did not listen in time")


@asynccontextmanager
async def over_http(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_over_http_the_agent_and_its_principal_are_the_requests_headers(
    served: Served, mcp_http: str
) -> None:
    headers = {
        "Authorization": f"Bearer {served.token(AGENT)}",
        "X-Grantline-Subject-Token": served.token(ALICE),
    }
    async with over_http(mcp_http, headers) as session:
        issued = answer_of(await session.call_tool("request_access", ASK))
        assert issued["status"] == "issued"
        claims = jwt.decode(issued["credential"]["token"], options={"verify_signature": False})
        assert (claims["sub"], claims["act"]) == (ALICE, {"sub": AGENT})
    with served.client(AGENT) as client:
        summary = client.get(f"/v1/access-requests/{issued['request_id']}").json()
    assert (summary["subject"], summary["requested_by"]) == (ALICE, AGENT)

    principal_only = {"X-Grantline-Subject-Token": served.token(ALICE)}
    async with over_http(mcp_http, principal_only) as session:
        anonymous = await session.call_tool("request_access", ASK)
    assert anonymous.is_error
    assert "no agent identity" in text_of(anonymous)
    assert "Authorization: Bearer" in text_of(anonymous)
    assert served.token(ALICE) not in text_of(anonymous)

    agent_only = {"Authorization": f"Bearer {served.token(AGENT)}"}
    async with over_http(mcp_http, agent_only) as session:
        no_principal = await session.call_tool("request_access", ASK)
    assert no_principal.is_error
    assert "X-Grantline-Subject-Token" in text_of(no_principal)
