"""Retries: reads and idempotent calls are sent again; a call that may have minted is not."""

from __future__ import annotations

import httpx
import pytest
from tests.unit.client.doubles import BROKER, FakeClock, ScriptedBroker, error, issued

from grantline.client import (
    AsyncGrantlineClient,
    BrokerUnavailableError,
    GrantlineClient,
    RetryPolicy,
)
from grantline.client.retry import Safety

FAST = RetryPolicy(attempts=3, backoff_seconds=0, max_backoff_seconds=0)
STATUS = httpx.Response(200, json={"request_id": "req-1", "status": "issued"})


def client_for(broker: ScriptedBroker, retry: RetryPolicy = FAST) -> GrantlineClient:
    http = httpx.Client(transport=broker.transport())
    return GrantlineClient(BROKER, "a.b.c", retry=retry, http_client=http, clock=FakeClock())


def connect_error() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


def read_timeout() -> httpx.ReadTimeout:
    return httpx.ReadTimeout("no answer in time")


@pytest.mark.parametrize(
    "failure",
    [
        error(503, "store_unavailable"),
        error(502, "bad_gateway"),
        connect_error(),
        read_timeout(),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_a_read_is_retried_after_a_failure(failure: httpx.Response | Exception) -> None:
    broker = ScriptedBroker([failure, STATUS])
    assert client_for(broker).status("req-1").status == "issued"
    assert len(broker.requests) == 2


def test_a_read_gives_up_after_the_attempts_allowed() -> None:
    broker = ScriptedBroker([error(503, "store_unavailable")])
    with pytest.raises(BrokerUnavailableError) as raised:
        client_for(broker).status("req-1")
    assert len(broker.requests) == 3
    assert raised.value.outcome_unknown is False


@pytest.mark.parametrize(
    "failure",
    [
        error(503, "issuer_unavailable"),
        read_timeout(),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.WriteError("broken pipe"),
    ],
)
def test_an_access_request_that_may_have_minted_is_never_sent_again(
    failure: httpx.Response | Exception,
) -> None:
    broker = ScriptedBroker([failure, issued()])
    with pytest.raises(BrokerUnavailableError) as raised:
        client_for(broker).request_access("postgres://orders-db", "db-read", 60)
    assert len(broker.requests) == 1
    assert raised.value.outcome_unknown is True


def test_an_access_request_that_never_left_is_sent_again() -> None:
    broker = ScriptedBroker([connect_error(), issued("req-2")])
    grant = client_for(broker).request_access("postgres://orders-db", "db-read", 60)
    assert grant.request_id == "req-2"
    assert len(broker.requests) == 2


def test_a_collect_is_not_repeated_after_a_read_timeout_since_it_answers_once() -> None:
    broker = ScriptedBroker([read_timeout(), STATUS])
    with pytest.raises(BrokerUnavailableError) as raised:
        client_for(broker).collect("req-1")
    assert raised.value.outcome_unknown is True
    assert len(broker.requests) == 1


def test_an_approval_is_not_repeated_after_a_503() -> None:
    broker = ScriptedBroker([error(503, "store_unavailable"), STATUS])
    with pytest.raises(BrokerUnavailableError):
        client_for(broker).approve("req-1", "ok")
    assert len(broker.requests) == 1


def test_a_revocation_is_retried_since_revoking_twice_is_harmless() -> None:
    revoked = httpx.Response(200, json={"request_id": "req-1", "status": "revoked"})
    broker = ScriptedBroker([read_timeout(), revoked])
    assert client_for(broker).revoke("req-1", "done").status == "revoked"
    assert len(broker.requests) == 2


def test_a_retry_after_longer_than_the_longest_backoff_is_not_waited_for() -> None:
    broker = ScriptedBroker([error(503, "store_unavailable", **{"Retry-After": "120"}), STATUS])
    with pytest.raises(BrokerUnavailableError) as raised:
        client_for(broker, RetryPolicy(attempts=3, max_backoff_seconds=1)).status("req-1")
    assert raised.value.retry_after == 120
    assert len(broker.requests) == 1


def test_the_token_is_asked_for_again_on_each_try() -> None:
    tokens = iter(["first.token.x", "second.token.y"])
    broker = ScriptedBroker([connect_error(), STATUS])
    http = httpx.Client(transport=broker.transport())
    client = GrantlineClient(BROKER, lambda: next(tokens), retry=FAST, http_client=http)
    client.status("req-1")
    assert [r.headers["authorization"] for r in broker.requests] == [
        "Bearer first.token.x",
        "Bearer second.token.y",
    ]


def test_backoff_grows_within_its_ceiling() -> None:
    policy = RetryPolicy(attempts=10, backoff_seconds=0.5, max_backoff_seconds=2)
    failure = httpx.ConnectError("refused")
    for attempt in range(1, 9):
        delay = policy.after_error(Safety.IDEMPOTENT, failure, attempt)
        assert delay is not None
        assert 0 <= delay <= min(2, 0.5 * 2 ** (attempt - 1))
    assert policy.after_error(Safety.IDEMPOTENT, failure, 10) is None


@pytest.mark.parametrize(
    "arguments",
    [{"attempts": 0}, {"backoff_seconds": -1}, {"max_backoff_seconds": -0.1}],
)
def test_a_retry_policy_that_makes_no_sense_is_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)  # type: ignore[arg-type]


async def test_the_async_client_follows_the_same_rules() -> None:
    reads = ScriptedBroker([error(504, "gateway_timeout"), STATUS])
    writes = ScriptedBroker([read_timeout(), issued()])
    async with (
        AsyncGrantlineClient(
            BROKER,
            "a.b.c",
            retry=FAST,
            http_client=httpx.AsyncClient(transport=reads.transport()),
        ) as reader,
        AsyncGrantlineClient(
            BROKER,
            "a.b.c",
            retry=FAST,
            http_client=httpx.AsyncClient(transport=writes.transport()),
        ) as writer,
    ):
        assert (await reader.status("req-1")).status == "issued"
        with pytest.raises(BrokerUnavailableError) as raised:
            await writer.request_access("postgres://orders-db", "db-read", 60)
    assert len(reads.requests) == 2
    assert len(writes.requests) == 1
    assert raised.value.outcome_unknown is True
