"""The MCP tools' own checks, before anything reaches the broker: the prompt digest, whom the
agent acts for, and where each transport finds the tokens."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from tests.unit.client.doubles import denied, pending

from grantline.client import EnvTokenSource, StaticTokenSource
from grantline.client.calls import error_from
from grantline.client.errors import AccessDeniedError
from grantline.client.models import pending_from
from grantline.mcp.server import HeaderCredentials, SourceCredentials
from grantline.mcp.tools import (
    AccessArguments,
    AccessTools,
    Delegation,
    ToolRefusedError,
    agent_block,
    denied_answer,
    pending_answer,
)

ALICE_TOKEN = jwt.encode({"sub": "user:alice"}, "k" * 32, algorithm="HS256")
DIGEST = hashlib.sha256(b"the prompt").hexdigest()


def arguments(**overrides: Any) -> AccessArguments:
    values: dict[str, Any] = {
        "target": "postgres://orders-db",
        "role": "db-read",
        "ttl_seconds": 60,
        "purpose": "report",
        "goal": "weekly summary",
        "tool_name": "sql.query",
        "prompt_sha256": DIGEST,
    } | overrides
    return AccessArguments(**values)


def context(**headers: str) -> Any:
    return SimpleNamespace(headers={k.lower(): v for k, v in headers.items()})


def test_the_agent_block_names_the_principal_goal_tool_and_digest() -> None:
    assert agent_block(arguments(prompt_sha256=DIGEST.upper()), ALICE_TOKEN) == {
        "on_behalf_of": "user:alice",
        "goal": "weekly summary",
        "tool": "sql.query",
        "prompt_sha256": DIGEST,
    }


def test_an_unreadable_principal_token_is_left_for_the_broker_to_refuse() -> None:
    assert "on_behalf_of" not in agent_block(arguments(), "not-a-jwt")


@pytest.mark.parametrize(
    "digest", ["summarise my orders of last week", DIGEST[:-1], DIGEST + "0", "g" * 64]
)
def test_a_prompt_digest_that_is_not_sha256_hex_is_refused_without_repeating_it(
    digest: str,
) -> None:
    with pytest.raises(ToolRefusedError, match="64 hex characters") as refused:
        agent_block(arguments(prompt_sha256=digest), ALICE_TOKEN)
    assert digest not in refused.value.message


async def test_asking_without_a_principal_token_is_refused_before_sending() -> None:
    tools = AccessTools("http://127.0.0.1:9")  # nothing listens: a send would fail otherwise
    with pytest.raises(ToolRefusedError, match="no principal token"):
        await tools.request_access(Delegation("agent.jwt"), arguments())


def test_http_tokens_come_from_the_bearer_and_subject_token_headers() -> None:
    who = HeaderCredentials().delegation(
        context(Authorization="Bearer agent.jwt", **{"X-Grantline-Subject-Token": "alice.jwt"}),
        principal=True,
    )
    assert (who.agent_token, who.principal_token) == ("agent.jwt", "alice.jwt")
    assert "jwt" not in repr(who)


@pytest.mark.parametrize("authorization", [None, "", "Basic abc", "Bearer ", "agent.jwt"])
def test_http_without_a_bearer_agent_token_is_refused(authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with pytest.raises(ToolRefusedError, match="no agent identity"):
        HeaderCredentials().delegation(context(**headers), principal=False)


def test_http_asking_needs_the_principal_header_and_other_tools_do_not() -> None:
    ctx = context(Authorization="Bearer agent.jwt")
    assert HeaderCredentials().delegation(ctx, principal=False).principal_token is None
    with pytest.raises(ToolRefusedError, match="X-Grantline-Subject-Token"):
        HeaderCredentials().delegation(ctx, principal=True)


def test_stdio_tokens_come_from_the_sources_and_a_missing_one_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TEST_PRINCIPAL", raising=False)
    sources = SourceCredentials(StaticTokenSource("agent.jwt"), EnvTokenSource("TEST_PRINCIPAL"))
    assert sources.delegation(context(), principal=False).agent_token == "agent.jwt"
    with pytest.raises(ToolRefusedError, match="TEST_PRINCIPAL"):
        sources.delegation(context(), principal=True)


def test_a_pending_answer_names_the_missing_approvals_and_how_to_collect() -> None:
    answer = pending_answer(pending_from(pending("req-p").json()))
    assert answer["status"] == "pending_approval"
    assert answer["approval"]["missing"] == [{"group": "security", "count": 1}]
    assert "check_request" in answer["next_step"]
    assert "credential" not in answer


def test_a_denial_is_an_answer_with_the_policys_reasons() -> None:
    refusal = error_from(denied("ttl_seconds 901 exceeds the cap of 900", request_id="req-d"))
    assert isinstance(refusal, AccessDeniedError)
    answer = denied_answer(refusal)
    assert (answer["status"], answer["request_id"]) == ("denied", "req-d")
    assert answer["reasons"] == ["ttl_seconds 901 exceeds the cap of 900"]
