"""Break-glass end to end: issued at once under its own cap, marked in every record, alerted,
and reviewed after the fact — or reported by the reconciler and by `audit verify` if not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Served, export, serve, verify
from tests.e2e.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

ALICE, SAM = "user:alice", "user:sam"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.running(secret="bg-secret") as running:
        yield running


@pytest.fixture
def served(tmp_path: Path, receiver: Receiver) -> Iterator[Served]:
    broker = serve(
        tmp_path / "home",
        extra_env={
            "GRANTLINE_WEBHOOK_URL": receiver.url,
            "GRANTLINE_WEBHOOK_SECRET": "bg-secret",
        },
    )
    yield broker
    broker.stop()


def emergency(served: Served, subject: str = ALICE, **overrides: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "target": "postgres://orders-db",
        "role": "db-admin",
        "ttl_seconds": 900,
        "purpose": "orders table locked",
        "break_glass": True,
        "justification": "INC-4411: checkout down, DBA on call unreachable",
    }
    body.update(overrides)
    with served.client(subject) as client:
        return client.post("/v1/access-requests", json=body)


def lineage(served: Served, request_id: str) -> list[dict[str, Any]]:
    with served.client("user:auditor") as client:
        records: list[dict[str, Any]] = client.get(
            f"/v1/access-requests/{request_id}/lineage"
        ).json()["records"]
    return records


def test_break_glass_issues_at_once_marks_every_record_and_alerts(
    served: Served, receiver: Receiver
) -> None:
    response = emergency(served)
    assert response.status_code == 201, response.text
    request_id = response.json()["request_id"]
    assert response.json()["credential"]["token"]

    records = lineage(served, request_id)
    assert [r["event"] for r in records] == ["requested", "evaluated", "approved", "issued"]
    assert all(r["data"]["break_glass"] is True for r in records)
    approved = records[2]["data"]
    assert approved["by"] == "break_glass"
    assert approved["justification"].startswith("INC-4411")

    with served.client(ALICE) as client:
        summary = client.get(f"/v1/access-requests/{request_id}").json()
    assert summary["status"] == "issued"
    assert summary["break_glass"] is True
    assert summary["review_status"] == "review_pending"

    event = receiver.wait_for("break_glass", request_id)
    assert event["role"] == "db-admin"
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'grantline_break_glass_grants_total{role="db-admin"} 1' in metrics


def test_break_glass_has_its_own_shorter_cap_and_needs_a_capable_role(served: Served) -> None:
    above = emergency(served, ttl_seconds=901)
    assert above.status_code == 403
    assert "900" in above.json()["error"]["message"]
    not_capable = emergency(served, role="report-write", target="s3://reports", ttl_seconds=60)
    assert not_capable.status_code == 403
    unjustified = emergency(served, justification="")
    assert unjustified.status_code == 422
    assert "justification" in unjustified.json()["error"]["message"]
    denied_id = above.json()["request_id"]
    assert all(r["data"]["break_glass"] is True for r in lineage(served, denied_id))


def test_a_review_closes_the_break_glass_item(served: Served, tmp_path: Path) -> None:
    request_id = emergency(served).json()["request_id"]
    with served.client(ALICE) as client:
        own = client.post(f"/v1/access-requests/{request_id}/review", json={"reason": "all good"})
    assert own.status_code == 403
    with served.client(SAM) as client:
        reviewed = client.post(
            f"/v1/access-requests/{request_id}/review",
            json={"reason": "PIR-88: access matched the incident timeline"},
        )
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["review_status"] == "reviewed"
    assert lineage(served, request_id)[-1]["event"] == "reviewed"
    export(served, tmp_path / "export.jsonl")
    code, output = verify(served, tmp_path / "export.jsonl")
    assert code == 0, output


def test_unreviewed_break_glass_past_its_deadline_is_a_finding(
    tmp_path: Path, receiver: Receiver
) -> None:
    broker = serve(
        tmp_path / "home",
        extra_env={
            "GRANTLINE_BREAK_GLASS_REVIEW_SECONDS": "1",
            "GRANTLINE_WEBHOOK_URL": receiver.url,
            "GRANTLINE_WEBHOOK_SECRET": "bg-secret",
        },
    )
    try:
        request_id = emergency(broker).json()["request_id"]
        time.sleep(1.5)
        with broker.client("user:operator") as client:
            report = client.post("/v1/reconcile").json()
        assert report["findings"] == {"break_glass_unreviewed": 1}
        assert receiver.wait_for("reconciled", request_id)["finding"] == "break_glass_unreviewed"
        export(broker, tmp_path / "export.jsonl")
        code, output = verify(broker, tmp_path / "export.jsonl")
        assert code != 0
        assert "break_glass_unreviewed" in output
        assert request_id in output
    finally:
        broker.stop()
