"""Webhooks from a served broker to a real local receiver that checks every signature."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Served, serve
from tests.e2e.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

SECRET = "whsec-test-0123456789"


def ask(served: Served, **overrides: Any) -> httpx.Response:
    body: dict[str, Any] = {"target": "s3://reports", "role": "report-write", "ttl_seconds": 300}
    body.update(overrides)
    with served.client("user:alice") as client:
        return client.post("/v1/access-requests", json=body)


def test_lifecycle_events_arrive_signed_and_retried(tmp_path: Path) -> None:
    # The receiver fails its first two deliveries: the broker retries with backoff.
    with Receiver.running(secret=SECRET, fail_first=2) as receiver:
        served = serve(
            tmp_path / "home",
            extra_env={
                "GRANTLINE_WEBHOOK_URL": receiver.url,
                "GRANTLINE_WEBHOOK_SECRET": SECRET,
                "GRANTLINE_WEBHOOK_BACKOFF_SECONDS": "0.05",
            },
        )
        try:
            request_id = ask(served).json()["request_id"]
            pending = receiver.wait_for("pending_approval", request_id)
            assert pending["role"] == "report-write"
            assert pending["required"] == [{"group": "security", "count": 1}]
            with served.client("user:sam") as client:
                client.post(
                    f"/v1/access-requests/{request_id}/approve", json={"reason": "ok"}
                ).raise_for_status()
            assert receiver.wait_for("approved", request_id)["approvers"] == ["user:sam"]
            with served.client("user:alice") as client:
                client.get(f"/v1/access-requests/{request_id}/credential").raise_for_status()
                client.post(
                    f"/v1/access-requests/{request_id}/revoke", json={"reason": "done"}
                ).raise_for_status()
            revoked = receiver.wait_for("revoked", request_id)
            assert revoked["by"] == "user:alice"
            assert receiver.bad_signatures == 0
            # The two failures were retries of the first delivery, under one delivery id.
            assert receiver.attempts[0] == receiver.attempts[1] == receiver.attempts[2]
        finally:
            served.stop()


def test_a_delivery_that_keeps_failing_is_recorded_and_counted(tmp_path: Path) -> None:
    with Receiver.running(secret=SECRET, fail_first=1000) as receiver:
        served = serve(
            tmp_path / "home",
            extra_env={
                "GRANTLINE_WEBHOOK_URL": receiver.url,
                "GRANTLINE_WEBHOOK_SECRET": SECRET,
                "GRANTLINE_WEBHOOK_ATTEMPTS": "3",
                "GRANTLINE_WEBHOOK_BACKOFF_SECONDS": "0.05",
            },
        )
        try:
            started = time.monotonic()
            response = ask(served)
            # The request path never waits for the receiver.
            assert response.status_code == 202
            request_id = response.json()["request_id"]
            events: list[str] = []
            deadline = started + 20
            while "notification_failed" not in events and time.monotonic() < deadline:
                time.sleep(0.1)
                with served.client("user:auditor") as client:
                    records = client.get(f"/v1/access-requests/{request_id}/lineage").json()
                events = [r["event"] for r in records["records"]]
            failed = records["records"][-1]
            assert failed["event"] == "notification_failed"
            assert failed["data"]["event"] == "pending_approval"
            assert failed["data"]["attempts"] == 3
            assert SECRET not in str(failed)
            metrics = httpx.get(f"{served.url}/metrics").text
            assert 'grantline_webhook_deliveries_total{outcome="failed"} 1' in metrics
        finally:
            served.stop()
