"""The webhook notifier against a real HTTP receiver on loopback: no mock of httpx."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import astuple
from datetime import UTC, datetime
from typing import Any

import pytest
from notify_support import Receiver, eventually, unused_port

from grantline.domain.errors import ConfigError
from grantline.notify import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TOTALS,
    Notification,
    Notifier,
    WebhookTotals,
    render_metrics,
    signature,
)

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-for-tests"
NOW = datetime(2025, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


class FrozenClock:
    def now(self) -> datetime:
        return NOW


class GiveUps:
    def __init__(self) -> None:
        self.calls: list[tuple[Notification, str]] = []

    async def __call__(self, notification: Notification, error: str) -> None:
        self.calls.append((notification, error))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


MakeNotifier = Callable[..., Notifier]


@pytest.fixture
async def make_notifier(receiver: Receiver) -> AsyncIterator[MakeNotifier]:
    """Notifiers to the receiver, fast backoff, closed at the end of the test."""
    made: list[Notifier] = []

    def make(**options: Any) -> Notifier:
        settings: dict[str, Any] = {
            "url": f"{receiver.base_url}/hook",
            "secret": SECRET,
            "backoff_seconds": 0.01,
            "max_backoff_seconds": 0.05,
            "clock": FrozenClock(),
            **options,
        }
        notifier = Notifier(**settings)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.close(drain_seconds=0)


def totals() -> WebhookTotals:
    return WebhookTotals(*astuple(TOTALS))


def since(before: WebhookTotals) -> WebhookTotals:
    return WebhookTotals(*(a - b for a, b in zip(astuple(TOTALS), astuple(before), strict=True)))


def body_of(receiver: Receiver, index: int = 0) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(receiver.received[index].body)
    return parsed


# -- what is sent ------------------------------------------------------------------------------


async def test_a_notification_is_posted_as_signed_json_the_receiver_can_verify(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier()
    before = totals()
    await notifier.start()

    notifier.notify("approved", "req-1", {"approver": "user:alice"})

    await eventually(lambda: since(before).delivered == 1)
    [request] = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER.lower()], expected)
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.body)
    assert body == {
        "event": "approved",
        "request_id": "req-1",
        "at": "2025-01-02T03:04:05.678Z",
        "delivery_id": body["delivery_id"],
        "approver": "user:alice",
    }
    assert uuid.UUID(body["delivery_id"])
    assert request.headers[EVENT_HEADER.lower()] == "approved"
    assert request.headers[DELIVERY_HEADER.lower()] == body["delivery_id"]
    assert request.body == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert request.path == "/hook"


async def test_without_a_secret_nothing_is_signed(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(secret=None)
    await notifier.start()

    notifier.notify("revoked", "req-2")

    await eventually(lambda: receiver.count() == 1)
    assert SIGNATURE_HEADER.lower() not in receiver.received[0].headers


async def test_details_cannot_overwrite_the_event_or_the_delivery_id(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier()
    await notifier.start()

    notifier.notify("revoked", "req-3", {"event": "approved", "delivery_id": "mine"})

    await eventually(lambda: receiver.count() == 1)
    body = body_of(receiver)
    assert body["event"] == "revoked"
    assert body["delivery_id"] == receiver.received[0].headers[DELIVERY_HEADER.lower()]
    assert body["delivery_id"] != "mine"


def test_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    assert signature(b"{}", "k") == ("sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest())


# -- retries and giving up ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429, 408])
async def test_a_transient_failure_is_retried_with_the_same_delivery_id(
    receiver: Receiver, make_notifier: MakeNotifier, status: int
) -> None:
    gave_up = GiveUps()
    notifier = make_notifier(on_give_up=gave_up)
    receiver.answer(status, status)
    before = totals()
    await notifier.start()

    notifier.notify("break_glass", "req-4")

    await eventually(lambda: since(before).delivered == 1)
    assert receiver.count() == 3
    assert len({r.headers[DELIVERY_HEADER.lower()] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    assert since(before).retries == 2
    assert since(before).failed == 0
    assert gave_up.calls == []


async def test_after_the_last_attempt_the_notification_is_given_up(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    gave_up = GiveUps()
    notifier = make_notifier(attempts=3, on_give_up=gave_up)
    receiver.answer(500, 502, 503)
    before = totals()
    await notifier.start()

    notifier.notify("revoked", "req-5", {"by": "user:bob"})

    await eventually(lambda: len(gave_up.calls) == 1)
    [(notification, error)] = gave_up.calls
    assert (notification.event, notification.request_id) == ("revoked", "req-5")
    assert notification.details == {"by": "user:bob"}
    assert notification.attempts == 3
    assert notification.delivery_id == body_of(receiver)["delivery_id"]
    assert error == "HTTP 503 after 3 attempt(s)"
    assert receiver.count() == 3
    assert (since(before).failed, since(before).retries, since(before).delivered) == (1, 2, 0)


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_a_client_error_is_not_retried(
    receiver: Receiver, make_notifier: MakeNotifier, status: int
) -> None:
    gave_up = GiveUps()
    notifier = make_notifier(on_give_up=gave_up)
    receiver.answer(status)
    before = totals()
    await notifier.start()

    notifier.notify("denied", "req-6")

    await eventually(lambda: len(gave_up.calls) == 1)
    assert gave_up.calls[0][1] == f"HTTP {status} after 1 attempt(s)"
    assert receiver.count() == 1
    assert since(before).retries == 0


async def test_a_receiver_that_is_not_listening_is_retried_then_given_up(
    make_notifier: MakeNotifier,
) -> None:
    gave_up = GiveUps()
    notifier = make_notifier(url=f"http://127.0.0.1:{unused_port()}/hook", on_give_up=gave_up)
    before = totals()
    await notifier.start()

    notifier.notify("approved", "req-7")

    await eventually(lambda: len(gave_up.calls) == 1)
    assert gave_up.calls[0][1] == "ConnectError after 6 attempt(s)"
    assert since(before).retries == 5


async def test_a_receiver_that_never_answers_times_out_and_is_retried(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    gave_up = GiveUps()
    notifier = make_notifier(attempts=2, timeout_seconds=0.2, on_give_up=gave_up)
    receiver.hold()
    await notifier.start()

    notifier.notify("approved", "req-8")

    await eventually(lambda: len(gave_up.calls) == 1)
    assert gave_up.calls[0][1].endswith("after 2 attempt(s)")
    assert "Timeout" in gave_up.calls[0][1]


async def test_a_failing_give_up_handler_is_logged_and_the_worker_goes_on(
    receiver: Receiver, make_notifier: MakeNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(notification: Notification, error: str) -> None:
        raise RuntimeError("the log is down")

    notifier = make_notifier(on_give_up=broken, workers=1)
    receiver.answer(400)
    before = totals()
    await notifier.start()

    notifier.notify("denied", "req-9")
    notifier.notify("approved", "req-10")

    await eventually(lambda: since(before).delivered == 1)
    assert since(before).failed == 1
    assert "give-up handler failed" in caplog.text


async def test_logs_name_neither_the_secret_nor_the_query_string(
    receiver: Receiver, make_notifier: MakeNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gave_up = GiveUps()
    url = f"http://user:password@{receiver.base_url.removeprefix('http://')}/hook?token=qs-token"
    notifier = make_notifier(url=url, on_give_up=gave_up)
    receiver.answer(403)
    await notifier.start()

    notifier.notify("approved", "req-11")

    await eventually(lambda: len(gave_up.calls) == 1)
    assert f"{receiver.base_url}/hook given up" in caplog.text
    # httpx's own request line names the receiver too, with the query string cut off.
    assert f"HTTP Request: POST {receiver.base_url}/hook " in caplog.text
    for secret in (SECRET, "qs-token", "password"):
        assert secret not in caplog.text
        assert secret not in gave_up.calls[0][1]


# -- never blocking ----------------------------------------------------------------------------


async def test_notify_returns_while_the_receiver_hangs(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(timeout_seconds=30, workers=1)
    receiver.hold()
    before = totals()
    await notifier.start()

    notifier.notify("approved", "req-12")
    await eventually(lambda: receiver.count() == 1)  # the worker is stuck in that POST
    for n in range(50):
        notifier.notify("approved", f"req-{n}")

    assert notifier.queue_depth() == 50
    assert "grantline_webhook_queue_depth 50" in render_metrics()
    assert since(before).delivered == 0
    receiver.release()
    await eventually(lambda: since(before).delivered == 51)


async def test_a_full_queue_drops_the_notification_and_counts_it(
    make_notifier: MakeNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = make_notifier(queue_size=2)  # not started: nothing leaves the queue
    before = totals()

    for n in range(3):
        notifier.notify("approved", f"req-{n}")

    assert since(before).dropped == 1
    assert notifier.queue_depth() == 2
    assert "dropped because the queue is full" in caplog.text
    metrics = render_metrics()
    assert f'grantline_webhook_deliveries_total{{outcome="dropped"}} {TOTALS.dropped}' in metrics


async def test_notify_never_raises_even_for_details_that_are_not_a_mapping(
    make_notifier: MakeNotifier,
) -> None:
    notifier = make_notifier()
    before = totals()

    notifier.notify("approved", "req-13", 42)  # type: ignore[arg-type]

    assert since(before).dropped == 1


# -- start and close ---------------------------------------------------------------------------


async def test_close_delivers_what_is_queued(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier()
    before = totals()
    await notifier.start()
    for n in range(20):
        notifier.notify("approved", f"req-{n}")

    await notifier.close(drain_seconds=10)

    assert receiver.count() == 20
    assert since(before).delivered == 20
    assert notifier.queue_depth() == 0


async def test_close_stops_after_its_drain_time_and_counts_the_rest_dropped(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(timeout_seconds=30, workers=1)
    receiver.hold()
    before = totals()
    await notifier.start()
    for n in range(3):
        notifier.notify("approved", f"req-{n}")
    await eventually(lambda: receiver.count() == 1)

    await notifier.close(drain_seconds=0.05)
    notifier.notify("approved", "after-close")

    assert since(before).dropped == 4
    assert since(before).delivered == 0


async def test_a_disabled_notifier_does_nothing(make_notifier: MakeNotifier) -> None:
    notifier = make_notifier(url=None)
    before = totals()
    await notifier.start()

    notifier.notify("approved", "req-14")
    await notifier.close()

    assert notifier.enabled is False
    assert since(before) == WebhookTotals()


@pytest.mark.parametrize(
    "url", ["ftp://example.org/hook", "/hook", "http:///hook", "example.org/hook"]
)
def test_a_webhook_url_that_is_not_http_with_a_host_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Notifier(url=url, secret=SECRET)
    assert url not in raised.value.message


def test_limits_below_one_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Notifier(url="http://127.0.0.1/hook", secret=SECRET, attempts=0)
