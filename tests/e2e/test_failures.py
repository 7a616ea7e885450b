"""Fail closed: a broker whose store goes away issues nothing and says why."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import GRANTLINE, Served, serve

from grantline.store.valkey import EmbeddedValkey

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

CI = "spiffe://example.org/ci-runner"
BODY = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60}


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path / "store")
    server.start()
    yield server
    server.stop()


def test_store_down_gives_503_no_credential_and_not_ready(
    tmp_path: Path, own_store: EmbeddedValkey
) -> None:
    served: Served = serve(tmp_path / "home", redis_url=own_store.url)
    try:
        with served.client(CI) as client:
            assert client.post("/v1/access-requests", json=BODY).status_code == 201
            own_store.stop()
            started = time.monotonic()
            response = client.post("/v1/access-requests", json=BODY)
            elapsed = time.monotonic() - started
        assert response.status_code == 503
        body = response.json()
        assert body["error"]["code"] == "store_unavailable"
        assert "credential" not in body and "token" not in response.text
        assert elapsed < 10  # bounded by the store timeout, not hanging
        ready = httpx.get(f"{served.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"] is False
    finally:
        served.stop()
    assert "Traceback" not in served.log.read_text()


def test_an_issued_jwt_is_inactive_at_introspection_once_its_ttl_has_passed(
    broker: Served,
) -> None:
    with broker.client(CI) as client:
        issued = client.post("/v1/access-requests", json={**BODY, "ttl_seconds": 1}).json()
        token = issued["credential"]["token"]
        assert client.post("/v1/introspect", json={"token": token}).json()["active"] is True
        time.sleep(2.2)
        assert client.post("/v1/introspect", json={"token": token}).json() == {"active": False}
        summary = client.get(f"/v1/access-requests/{issued['request_id']}").json()
    assert summary["status"] == "expired"


def test_a_second_embedded_broker_on_the_same_home_refuses_to_start(broker: Served) -> None:
    result = subprocess.run(
        [GRANTLINE, "serve", "--port", "1"],
        env=broker.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 4
    assert "GRANTLINE_REDIS_URL" in result.stderr
    assert httpx.get(f"{broker.url}/readyz").status_code == 200
