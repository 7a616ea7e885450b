"""The broker wired to an OPA server (``GRANTLINE_OPA_URL``): the app built by ``create_app``
on a real Valkey, served in process over httpx's ASGI transport, with respx answering for the
OPA host only, as OPA documents its Data API (tests/unit/policy/opa_double.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from tests.unit.policy.opa_double import OPA_URL, OpaDouble

from grantline.api.app import create_app
from grantline.config import Runtime, Settings, dev_issuer
from grantline.policy.opa import OpaEngine

pytestmark = pytest.mark.integration

POLICIES = Path(__file__).resolve().parents[3] / "policies"
CI = "spiffe://example.org/ci-runner"
ALICE, SAM, AUDITOR = "user:alice", "user:sam", "user:auditor"


@dataclass
class Broker:
    client: httpx.AsyncClient
    runtime: Runtime
    settings: Settings
    opa: OpaDouble

    def as_(self, subject: str) -> dict[str, str]:
        token = dev_issuer(self.settings).mint(subject, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    async def ask(self, subject: str, role: str, ttl: int, target: str) -> httpx.Response:
        body = {"target": target, "role": role, "ttl_seconds": ttl, "purpose": "opa test"}
        return await self.client.post("/v1/access-requests", json=body, headers=self.as_(subject))

    async def records(self) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/records",
            params={"limit": 1000},
            headers={**self.as_(AUDITOR), "Accept": "application/x-ndjson"},
        )
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.content.splitlines()]


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    # Only the OPA host is mocked; the app itself is reached over the ASGI transport.
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def broker(tmp_path: Path, redis_url: str, mock: respx.MockRouter) -> AsyncIterator[Broker]:
    opa = OpaDouble(POLICIES)
    opa.install(mock)
    settings = Settings(
        home=tmp_path / "home",
        redis_url=redis_url,
        opa_url=OPA_URL,
        policies=tmp_path / "no-local-policies",
        reconcile_seconds=0,
        checkpoint_seconds=0,
        policy_reload_seconds=60,
        vault_dev=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://grantline.test") as c:
            yield Broker(c, app.state.runtime, settings, opa)


async def test_requests_are_decided_by_opa_and_recorded_with_its_revision_and_decision_id(
    broker: Broker,
) -> None:
    assert isinstance(broker.runtime.policy, OpaEngine)

    allowed = await broker.ask(CI, "db-read", 600, "postgres://orders-db")
    denied = await broker.ask(CI, "db-read", 7200, "postgres://orders-db")

    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["decision"]["policy_digest"] == broker.opa.revision
    assert denied.status_code == 403
    assert (
        "ttl_seconds 7200 exceeds the cap of 3600 for db-read"
        in denied.json()["decision"]["reasons"]
    )
    evaluated = [r for r in await broker.records() if r["event"] == "evaluated"]
    assert [r["data"]["decision"]["allow"] for r in evaluated] == [True, False]
    for record in evaluated:
        assert record["data"]["policy_digest"] == broker.opa.revision
        opa = record["data"]["decision"]["opa"]
        assert opa["bundles"] == {"grantline": broker.opa.revision}
        assert opa["decision_id"].startswith("d-")
    # The input OPA decided on is the one whose digest the record names.
    assert broker.opa.inputs[-1]["request"]["ttl_seconds"] == 7200


async def test_opa_is_asked_off_the_event_loop(broker: Broker) -> None:
    await broker.ask(CI, "db-read", 600, "postgres://orders-db")

    assert broker.opa.threads
    assert threading.main_thread().name not in broker.opa.threads


async def test_auditors_and_approvers_come_from_opas_policy_data(broker: Broker) -> None:
    pending = await broker.ask(ALICE, "report-write", 600, "s3://reports")
    assert pending.status_code == 202, pending.text
    request_id = pending.json()["request_id"]

    approved = await broker.client.post(
        f"/v1/access-requests/{request_id}/approve",
        json={"reason": "reviewed"},
        headers=broker.as_(SAM),
    )

    assert approved.status_code == 200, approved.text
    events = [r["event"] for r in await broker.records()]
    assert "approval_given" in events
    given = next(r for r in await broker.records() if r["event"] == "approval_given")
    assert given["data"]["decision"]["policy_digest"] == broker.opa.revision
    assert "decision_id" in given["data"]["decision"]["opa"]
    refused = await broker.client.get("/v1/records", headers=broker.as_(CI))
    assert refused.status_code == 403


async def test_no_policy_is_activated_locally_when_opa_decides(broker: Broker) -> None:
    await broker.ask(CI, "db-read", 600, "postgres://orders-db")

    assert "policy_activated" not in {r["event"] for r in await broker.records()}


async def test_when_opa_fails_requests_are_denied_and_the_broker_is_not_ready(
    broker: Broker,
) -> None:
    assert (await broker.client.get("/readyz")).json()["checks"]["policy"] is True
    broker.opa.override = lambda path, data: httpx.Response(500, json={"code": "internal_error"})

    denied = await broker.ask(CI, "db-read", 600, "postgres://orders-db")
    await broker.runtime.policy_watch.check()

    assert denied.status_code == 403
    assert denied.json()["decision"]["reasons"] == ["OPA answered HTTP 500 (internal_error)"]
    ready = await broker.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["policy"] is False
    evaluated = [r for r in await broker.records() if r["event"] == "evaluated"][-1]
    assert evaluated["data"]["decision"]["engine_error"] is True
