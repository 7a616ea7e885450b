"""Uses of Vault grant tokens through a served broker: OpenBao's file audit device sees each
request, the broker links it to its grant and records ``used`` records, and flags a use after
revocation."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
from tests.conftest import Served, export, serve, verify

from grantline.issuers.vault.devserver import DevOpenBao, prepare_for_grantline

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
KV = {
    "target": "vault://secret",
    "role": "vault-kv-read",
    "credential_type": "vault_token",
    "ttl_seconds": 600,
    "purpose": "e2e",
}


@dataclass
class AuditedBao:
    server: DevOpenBao
    broker_token: str
    audit_log: Path


@pytest.fixture
def audited_bao(tmp_path: Path) -> Iterator[AuditedBao]:
    """An OpenBao whose configuration file declares a file audit device."""
    audit_log = tmp_path / "bao" / "audit.log"
    server = DevOpenBao(tmp_path / "bao" / "bao.log", audit_log=audit_log)
    server.start()
    try:
        broker_token = prepare_for_grantline(server.root())
        root = server.root()
        for path, value in (("app/db", "one"), ("app/cache", "two")):
            root.secrets.kv.v2.create_or_update_secret(path=path, secret={"value": value})
        yield AuditedBao(server, broker_token, audit_log)
    finally:
        server.stop()


@pytest.fixture
def broker(tmp_path: Path, redis_url: str, audited_bao: AuditedBao) -> Iterator[Served]:
    served = serve(
        tmp_path / "home",
        redis_url=redis_url,
        extra_env={
            "GRANTLINE_VAULT_ADDR": audited_bao.server.addr,
            "GRANTLINE_VAULT_TOKEN": audited_bao.broker_token,
            "GRANTLINE_VAULT_AUDIT_LOG": str(audited_bao.audit_log),
            "GRANTLINE_USAGE_WINDOW_SECONDS": "1",
        },
    )
    yield served
    served.stop()


def lineage(served: Served, request_id: str) -> list[dict[str, Any]]:
    with served.client(CI) as client:
        response = client.get(f"/v1/access-requests/{request_id}/lineage")
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["records"]
    return records


def used_until(
    served: Served, request_id: str, enough: Any, timeout: float = 20
) -> list[dict[str, Any]]:
    """The grant's ``used`` records once ``enough(records)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        used = [r["data"] for r in lineage(served, request_id) if r["event"] == "used"]
        if enough(used):
            return used
        assert time.monotonic() < deadline, f"not enough uses recorded: {used}"
        time.sleep(0.3)


def test_reads_with_a_vault_grant_token_are_recorded_and_a_use_after_revocation_is_flagged(
    broker: Served, audited_bao: AuditedBao, tmp_path: Path
) -> None:
    with broker.client(CI) as client:
        response = client.post("/v1/access-requests", json=KV)
    assert response.status_code == 201, response.text
    request_id, token = response.json()["request_id"], response.json()["credential"]["token"]
    vault = hvac.Client(url=audited_bao.server.addr, token=token)
    for path in ("app/db", "app/cache", "app/db"):
        vault.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)

    used = used_until(broker, request_id, lambda u: sum(r["count"] for r in u) >= 3)
    operations: Counter[str] = Counter()
    for record in used:
        operations.update(record["operations"])
        assert record["reporters"] == ["openbao-audit:file"]
        assert record["after_end"] == 0
        assert record["window"]["start"] <= record["first_use"] <= record["last_use"]
    assert operations == {"read": 3}
    assert {r for record in used for r in record["resources"]} == {
        "secret/data/app/db",
        "secret/data/app/cache",
    }
    assert sum(r["outcomes"].get("allowed", 0) for r in used) == 3

    with broker.client(CI) as client:
        revoked = client.post(f"/v1/access-requests/{request_id}/revoke", json={"reason": "done"})
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(hvac.exceptions.Forbidden):
        vault.secrets.kv.v2.read_secret_version(path="app/db", raise_on_deleted_version=True)

    late = used_until(broker, request_id, lambda u: any(r["after_end"] for r in u))[-1]
    assert late["after_end"] >= 1
    assert late["outcomes"].get("denied", 0) >= 1
    assert "secret/data/app/db" in late["resources"]
    records = lineage(broker, request_id)
    events = [r["event"] for r in records]
    assert events[-2:] == ["used", "reconciled"]
    assert records[-1]["data"]["finding"] == "used_after_end"
    assert token not in broker.log.read_text()

    export(broker, tmp_path / "export.jsonl")
    code, output = verify(broker, tmp_path / "export.jsonl")
    assert code == 0, output


def test_other_tokens_and_the_brokers_own_requests_are_not_counted(
    broker: Served, audited_bao: AuditedBao
) -> None:
    with broker.client(CI) as client:
        response = client.post("/v1/access-requests", json=KV)
    request_id, token = response.json()["request_id"], response.json()["credential"]["token"]
    root = audited_bao.server.root()
    other = root.auth.token.create(policies=["grantline-kv-read"])["auth"]["client_token"]
    hvac.Client(url=audited_bao.server.addr, token=other).secrets.kv.v2.read_secret_version(
        path="app/db", raise_on_deleted_version=True
    )
    hvac.Client(url=audited_bao.server.addr, token=token).secrets.kv.v2.read_secret_version(
        path="app/cache", raise_on_deleted_version=True
    )
    used = used_until(broker, request_id, bool)
    time.sleep(2.5)  # any stray use would land in a later window
    used = used_until(broker, request_id, bool)
    assert sum(r["count"] for r in used) == 1
    assert used[0]["resources"] == ["secret/data/app/cache"]
