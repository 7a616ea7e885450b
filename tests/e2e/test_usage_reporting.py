"""Usage reporting end to end: a resource server (a FastAPI app in this test) verifies the
tokens a served broker issued with a GrantVerifier and a UsageReporter; the broker records
the use in the grant's lineage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tests.conftest import Served, serve

from grantline.client import (
    Grant,
    GrantlineClient,
    GrantVerifier,
    InvalidGrantError,
    UsageReporter,
)

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
RESOURCE_SERVER = "spiffe://example.org/resource-server"
DB = "postgres://orders-db"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    broker = serve(
        tmp_path_factory.mktemp("usage") / "home",
        extra_env={"GRANTLINE_USAGE_WINDOW_SECONDS": "1"},
    )
    yield broker
    broker.stop()


def resource_app(verifier: GrantVerifier) -> FastAPI:
    """A resource server: every request needs a Grantline JWT for the orders database."""
    app = FastAPI()

    @app.get("/orders/{order}")
    def order(order: str, request: Request) -> JSONResponse:
        try:
            grant = verifier.verify_request(request.method, str(request.url), request.headers)
        except InvalidGrantError as refused:
            return JSONResponse({"refused": refused.code}, status_code=401)
        return JSONResponse({"order": order, "for": grant.subject})

    return app


def lineage(served: Served, request_id: str) -> list[dict[str, Any]]:
    with served.client("user:auditor") as client:
        response = client.get(f"/v1/access-requests/{request_id}/lineage")
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["records"]
    return records


def used_records(served: Served, request_id: str, seconds: float = 20) -> list[dict[str, Any]]:
    """The grant's ``used`` records, once there is one (the broker aggregates per window)."""
    deadline = time.monotonic() + seconds
    while True:
        used = [r for r in lineage(served, request_id) if r["event"] == "used"]
        if used or time.monotonic() > deadline:
            return used
        time.sleep(0.25)


async def test_the_use_a_resource_server_reports_lands_in_the_grants_lineage(
    served: Served,
) -> None:
    with GrantlineClient(served.url, served.token(CI)) as workload:
        issued = workload.request_access(DB, "db-read", 600, purpose="nightly export")
    assert isinstance(issued, Grant)
    reporter = UsageReporter(served.url, served.token(RESOURCE_SERVER))
    paths = ["/orders/1", "/orders/2", "/orders/1"]
    forged = issued.token[:-4] + ("BBBB" if issued.token.endswith("AAAA") else "AAAA")
    with GrantVerifier(served.url, DB, usage=reporter) as verifier:
        transport = httpx.ASGITransport(app=resource_app(verifier))
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as app:
            for path in paths:
                answer = await app.get(path, headers={"Authorization": f"Bearer {issued.token}"})
                assert answer.status_code == 200, answer.text
            refused = await app.get("/orders/3", headers={"Authorization": f"Bearer {forged}"})
            assert refused.status_code == 401
        assert reporter.buffered == len(paths)  # nothing was sent while serving
        reporter.close()
    assert (reporter.sent, reporter.failed, reporter.dropped) == (3, 0, 0)

    used = used_records(served, issued.request_id)
    assert used, "no used record in the lineage"
    data = used[-1]["data"]
    assert data["count"] == len(paths)
    assert data["operations"] == {"GET": len(paths)}
    assert data["outcomes"] == {"allowed": len(paths)}
    assert sorted(data["resources"]) == ["/orders/1", "/orders/2"]
    # The forged token's request was never reported.
    assert "/orders/3" not in json.dumps(data)
