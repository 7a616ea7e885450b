"""The request middleware: X-Request-Id in and out, the ids on the request's log lines."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from grantline.observe import context
from grantline.observe.http import RequestContext

seen: list[tuple[str, str | None]] = []


async def _echo(request: Request) -> PlainTextResponse:
    ids = context.current()
    assert ids is not None
    seen.append((ids.correlation_id, ids.request_id))
    logging.getLogger("grantline.test.http").warning("handling")
    return PlainTextResponse("ok")


def _app() -> RequestContext:
    routes = [
        Route("/v1/access-requests/{request_id}", _echo),
        Route("/healthz", _echo),
    ]
    return RequestContext(Starlette(routes=routes))


async def _get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_the_callers_request_id_is_used_and_echoed() -> None:
    seen.clear()
    response = await _get("/healthz", {"X-Request-Id": "trace-abc.123"})

    assert response.headers["x-request-id"] == "trace-abc.123"
    assert seen == [("trace-abc.123", None)]


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 129, 'quote"s', "new\\nline"])
async def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(sent: str | None) -> None:
    seen.clear()
    response = await _get("/healthz", {"X-Request-Id": sent} if sent else None)

    made = response.headers["x-request-id"]
    assert made != sent
    assert len(made) == 32
    assert int(made, 16) >= 0
    assert seen == [(made, None)]


async def test_the_access_request_of_the_path_is_the_request_id() -> None:
    seen.clear()
    await _get("/v1/access-requests/01a20b7e-e92e-71e6-9f55-25e9812c9c26")

    assert seen[0][1] == "01a20b7e-e92e-71e6-9f55-25e9812c9c26"


async def test_every_line_logged_while_handling_carries_the_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from grantline.observe.logs import RequestIdsFilter  # noqa: PLC0415

    caplog.handler.addFilter(RequestIdsFilter())
    with caplog.at_level(logging.INFO):
        response = await _get("/v1/access-requests/01a20b7e-0000-7000-8000-000000000001")

    [record] = [r for r in caplog.records if r.name == "grantline.test.http"]
    assert record.correlation_id == response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert record.request_id == "01a20b7e-0000-7000-8000-000000000001"  # type: ignore[attr-defined]
    assert context.current() is None
