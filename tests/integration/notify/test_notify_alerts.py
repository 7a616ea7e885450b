"""Reconciler alerts: counted and logged at once, the webhook only queued on the notifier."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
from notify_support import Receiver, eventually

from grantline.notify import Notifier
from grantline.reconcile.alerts import FINDINGS, SIGNATURE_HEADER, Alerts, render_metrics, signature

pytestmark = pytest.mark.integration

SECRET = "alerts-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


async def test_a_finding_is_counted_logged_and_sent_as_a_reconciled_webhook(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(url=f"{receiver.base_url}/alerts", secret=SECRET, backoff_seconds=0.01)
    await notifier.start()
    before = FINDINGS["alive_after_end"]
    try:
        await Alerts(notifier).alert(
            "alive_after_end", "req-1", {"message": "still alive", "action": "revoked"}
        )
        await eventually(lambda: receiver.count() == 1)
    finally:
        await notifier.close()

    assert FINDINGS["alive_after_end"] == before + 1
    assert f'finding="alive_after_end"}} {before + 1}' in render_metrics()
    assert '"finding": "alive_after_end"' in caplog.text
    [request] = receiver.received
    assert request.headers[SIGNATURE_HEADER.lower()] == signature(request.body, SECRET)
    assert request.headers[SIGNATURE_HEADER.lower()] == (
        "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    )
    body = json.loads(request.body)
    assert body["event"] == "reconciled"
    assert body["request_id"] == "req-1"
    assert body["finding"] == "alive_after_end"
    assert body["message"] == "still alive"
    assert body["action"] == "revoked"


async def test_without_a_notifier_a_finding_is_still_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = FINDINGS["issuance_without_record"]

    await Alerts(None).alert("issuance_without_record", "req-2", {"action": "none"})

    assert FINDINGS["issuance_without_record"] == before + 1
    assert '"request_id": "req-2"' in caplog.text
