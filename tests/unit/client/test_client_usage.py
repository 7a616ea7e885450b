"""UsageReporter and AsyncUsageReporter: record() only buffers, batches go out on time or
when full, a retried batch keeps its id, a full buffer drops the oldest, close() flushes.
The broker is an httpx.MockTransport."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.unit.client.doubles import BROKER, IDENTITY, UsageBroker, accepted, error

from grantline.client import RetryPolicy, UsageReporter

BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
NOW_TEXT = "2030-01-01T12:00:00.000Z"


@pytest.fixture
def broker() -> UsageBroker:
    return UsageBroker()


@pytest.fixture
def reporter(broker: UsageBroker) -> Iterator[UsageReporter]:
    reporter = broker.reporter()
    yield reporter
    reporter.close()


def eventually(condition: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the reporter did not send in time"
        time.sleep(0.01)


def test_record_only_buffers_and_sends_nothing(
    broker: UsageBroker, reporter: UsageReporter
) -> None:
    for n in range(10):
        reporter.record(f"jti-{n}", "GET", "/v1/export")
    time.sleep(0.1)
    assert broker.bodies == []
    assert reporter.buffered == 10


def test_a_flush_sends_one_report_as_the_resource_server_with_every_observation(
    broker: UsageBroker, reporter: UsageReporter
) -> None:
    reporter.record("jti-1", "GET", "/v1/export")
    reporter.record("jti-2", "s3:GetObject", outcome="denied")
    reporter.flush()
    [body] = broker.bodies
    assert BATCH_ID.match(body["batch_id"])
    assert body["observations"] == [
        {
            "jti": "jti-1",
            "operation": "GET",
            "resource": "/v1/export",
            "outcome": "allowed",
            "at": NOW_TEXT,
        },
        {"jti": "jti-2", "operation": "s3:GetObject", "outcome": "denied", "at": NOW_TEXT},
    ]
    assert broker.headers[0]["authorization"] == f"Bearer {IDENTITY}"
    assert (reporter.sent, reporter.failed, reporter.dropped, reporter.buffered) == (2, 0, 0, 0)


def test_a_full_batch_is_sent_at_once_without_waiting_for_the_timer(broker: UsageBroker) -> None:
    with broker.reporter(flush_seconds=3600) as reporter:
        for n in range(499):
            reporter.record(f"jti-{n}", "GET")
        time.sleep(0.1)
        assert broker.bodies == []
        reporter.record("jti-499", "GET")
        eventually(lambda: reporter.sent == 500)
    assert [len(jtis) for jtis in broker.jtis()] == [500]


def test_observations_are_sent_every_flush_seconds(broker: UsageBroker) -> None:
    with broker.reporter(flush_seconds=0.05) as reporter:
        reporter.record("jti-1", "GET")
        eventually(lambda: reporter.sent == 1)
        reporter.record("jti-2", "GET")
        eventually(lambda: reporter.sent == 2)
    assert broker.jtis() == [["jti-1"], ["jti-2"]]


def test_close_sends_what_is_left_and_later_records_are_dropped(broker: UsageBroker) -> None:
    reporter = broker.reporter()
    for n in range(3):
        reporter.record(f"jti-{n}", "GET")
    reporter.close()
    assert broker.jtis() == [["jti-0", "jti-1", "jti-2"]]
    reporter.record("jti-late", "GET")
    reporter.close()
    assert (reporter.sent, reporter.dropped, len(broker.bodies)) == (3, 1, 1)


def test_a_batch_is_retried_with_the_same_batch_id_after_503_429_and_transport_failures() -> None:
    broker = UsageBroker(
        error(503, "store_unavailable"),
        httpx.ConnectError("refused"),
        error(429, "rate_limited", **{"Retry-After": "0"}),
        accepted,
    )
    with broker.reporter(retry=RetryPolicy(attempts=4, backoff_seconds=0)) as reporter:
        reporter.record("jti-1", "GET")
        reporter.flush()
        assert (reporter.sent, reporter.failed) == (1, 0)
    assert len(broker.bodies) == 4
    assert all(body == broker.bodies[0] for body in broker.bodies)


def test_a_batch_is_given_up_after_the_retry_policy_and_counted_failed() -> None:
    broker = UsageBroker(error(503, "store_unavailable"))
    with broker.reporter(retry=RetryPolicy(attempts=2, backoff_seconds=0)) as reporter:
        reporter.record("jti-1", "GET")
        reporter.record("jti-2", "GET")
        reporter.flush()
        assert (reporter.sent, reporter.failed, reporter.buffered) == (0, 2, 0)
        reporter.record("jti-3", "GET")
        reporter.flush()
    assert len(broker.bodies) == 4
    # The next batch is a new one, with a new id.
    assert broker.bodies[2]["batch_id"] != broker.bodies[0]["batch_id"]


@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_a_refused_report_is_not_sent_again(status: int) -> None:
    broker = UsageBroker(error(status, "refused"))
    with broker.reporter() as reporter:
        reporter.record("jti-1", "GET")
        reporter.flush()
        assert (reporter.sent, reporter.failed) == (0, 1)
    assert len(broker.bodies) == 1


def test_a_failed_report_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    broker = UsageBroker(error(403, "forbidden", "not a resource server"))
    with caplog.at_level(logging.DEBUG), broker.reporter() as reporter:
        reporter.record("jti-1", "GET")
        reporter.flush()
    assert "not a resource server" in caplog.text
    assert IDENTITY not in caplog.text


def test_when_the_buffer_is_full_the_oldest_are_dropped_and_counted(broker: UsageBroker) -> None:
    with broker.reporter(capacity=3) as reporter:
        for n in range(5):
            reporter.record(f"jti-{n}", "GET")
        assert (reporter.buffered, reporter.dropped) == (3, 2)
    assert broker.jtis() == [["jti-2", "jti-3", "jti-4"]]


def test_a_flush_sends_batches_of_at_most_batch_size(broker: UsageBroker) -> None:
    with broker.reporter(batch_size=2) as reporter:
        # A full batch wakes the thread; flush() may then find part of the buffer taken.
        for n in range(5):
            reporter.record(f"jti-{n}", "GET")
        reporter.flush()
        eventually(lambda: reporter.sent == 5)
    assert sorted(jti for jtis in broker.jtis() for jti in jtis) == [f"jti-{n}" for n in range(5)]
    assert all(len(jtis) <= 2 for jtis in broker.jtis())


def test_unknown_token_ids_in_the_receipt_are_counted() -> None:
    broker = UsageBroker(
        httpx.Response(202, json={"accepted": 1, "unknown": [1], "duplicate": False})
    )
    with broker.reporter() as own:
        own.record("jti-1", "GET")
        own.record("never-issued", "GET")
        own.flush()
        assert (own.sent, own.unknown) == (2, 1)


def test_overlong_operations_and_resources_are_cut_to_the_api_limits(
    broker: UsageBroker, reporter: UsageReporter
) -> None:
    reporter.record("jti-1", "X" * 100, "/" + "r" * 400)
    reporter.flush()
    [seen] = broker.bodies[0]["observations"]
    assert (len(seen["operation"]), len(seen["resource"])) == (64, 256)


@pytest.mark.parametrize(
    ("jti", "operation", "outcome"),
    [("", "GET", "allowed"), ("jti-1", "", "allowed"), ("jti-1", "GET", "maybe")],
)
def test_an_observation_the_broker_would_refuse_is_refused_at_once(
    reporter: UsageReporter, jti: str, operation: str, outcome: Any
) -> None:
    with pytest.raises(ValueError):
        reporter.record(jti, operation, outcome=outcome)
    assert reporter.buffered == 0


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        UsageReporter(BROKER, IDENTITY, batch_size=501)
    with pytest.raises(ValueError, match="flush_seconds"):
        UsageReporter(BROKER, IDENTITY, flush_seconds=0)


async def test_the_async_reporter_buffers_then_sends_a_full_batch_at_once() -> None:
    broker = UsageBroker()
    reporter = broker.async_reporter(batch_size=3, flush_seconds=3600)
    reporter.record("jti-1", "GET", "/a")
    reporter.record("jti-2", "GET", "/b")
    assert broker.bodies == []
    reporter.record("jti-3", "GET", "/c")
    for _ in range(100):
        if reporter.sent:
            break
        await asyncio.sleep(0.01)
    assert broker.jtis() == [["jti-1", "jti-2", "jti-3"]]
    reporter.record("jti-4", "GET")
    await reporter.aclose()
    assert broker.jtis() == [["jti-1", "jti-2", "jti-3"], ["jti-4"]]
    assert (reporter.sent, reporter.failed) == (4, 0)


async def test_the_async_reporter_retries_with_the_same_batch_id_then_gives_up() -> None:
    broker = UsageBroker(httpx.ConnectError("refused"), error(503, "store_unavailable"))
    async with broker.async_reporter() as reporter:
        reporter.record("jti-1", "GET")
        await reporter.flush()
        assert (reporter.sent, reporter.failed) == (0, 1)
    assert len(broker.bodies) == 3
    assert len({body["batch_id"] for body in broker.bodies}) == 1
