"""Reporting the outcome of the action a grant served: one POST, never repeated."""

from __future__ import annotations

import httpx
import pytest
from tests.unit.client.doubles import BROKER, FakeClock, ScriptedBroker, error, issued

from grantline.client import (
    NO_RETRY,
    AsyncGrantlineClient,
    BrokerUnavailableError,
    ConflictError,
    Grant,
    GrantlineClient,
    OutcomeReceipt,
    RetryPolicy,
    UnexpectedResponseError,
)
from grantline.domain.models import RequestId

RECORDED = httpx.Response(201, json={"request_id": "req-1", "event": "outcome", "seq": 42})


def client_for(broker: ScriptedBroker, retry: RetryPolicy = NO_RETRY) -> GrantlineClient:
    http = httpx.Client(transport=broker.transport())
    return GrantlineClient(BROKER, "agent.jwt.here", retry=retry, http_client=http)


def test_an_outcome_is_posted_with_what_changed_and_read_as_a_receipt() -> None:
    broker = ScriptedBroker([RECORDED])
    receipt = client_for(broker).report_outcome(
        "req-1",
        "export the Q3 orders",
        "succeeded",
        changed=["s3://reports/q3.csv"],
        summary="12,408 rows",
    )
    assert receipt == OutcomeReceipt(RequestId("req-1"), 42)
    sent = broker.requests[0]
    assert (sent.method, sent.url.path) == ("POST", "/v1/access-requests/req-1/outcome")
    assert sent.headers["authorization"] == "Bearer agent.jwt.here"
    assert broker.bodies() == [
        {
            "action": "export the Q3 orders",
            "result": "succeeded",
            "changed": ["s3://reports/q3.csv"],
            "summary": "12,408 rows",
        }
    ]


def test_a_grant_stands_for_its_request_and_an_absent_summary_is_not_sent() -> None:
    broker = ScriptedBroker([issued("req-1"), RECORDED])
    client = client_for(broker)
    grant = client.request_access("postgres://orders-db", "db-read", 600)
    assert isinstance(grant, Grant)
    client.report_outcome(grant, "read", "failed")
    assert broker.requests[1].url.path == "/v1/access-requests/req-1/outcome"
    assert broker.bodies()[1] == {"action": "read", "result": "failed", "changed": []}


def test_one_string_as_changed_is_refused_before_sending() -> None:
    broker = ScriptedBroker([RECORDED])
    with pytest.raises(TypeError, match="changed"):
        client_for(broker).report_outcome("req-1", "x", "succeeded", changed="s3://a")
    assert broker.requests == []


def test_nothing_issued_is_a_conflict_with_the_brokers_message() -> None:
    broker = ScriptedBroker([error(409, "conflict", "request r is denied: nothing was issued")])
    with pytest.raises(ConflictError, match="nothing was issued"):
        client_for(broker).report_outcome("r", "x", "succeeded")


def test_an_outcome_is_never_sent_twice_after_an_ambiguous_failure() -> None:
    broker = ScriptedBroker([httpx.ReadTimeout("slow"), RECORDED])
    retrying = RetryPolicy(attempts=3, backoff_seconds=0)
    with pytest.raises(BrokerUnavailableError) as raised:
        client_for(broker, retrying).report_outcome("req-1", "x", "partial")
    assert raised.value.outcome_unknown
    assert len(broker.requests) == 1


def test_a_receipt_without_a_seq_is_an_unexpected_response() -> None:
    broker = ScriptedBroker([httpx.Response(201, json={"request_id": "req-1"})])
    with pytest.raises(UnexpectedResponseError):
        client_for(broker).report_outcome("req-1", "x", "succeeded")


async def test_the_async_client_reports_the_same_way() -> None:
    broker = ScriptedBroker([RECORDED])
    http = httpx.AsyncClient(transport=broker.transport())
    async with AsyncGrantlineClient(
        BROKER, "agent.jwt.here", retry=NO_RETRY, http_client=http, clock=FakeClock()
    ) as client:
        receipt = await client.report_outcome("req-1", "wrote", "succeeded", changed=["a", "b"])
    await http.aclose()
    assert receipt.seq == 42
    assert broker.bodies() == [{"action": "wrote", "result": "succeeded", "changed": ["a", "b"]}]
