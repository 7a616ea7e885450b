"""credential(): cached while fresh, renewed inside the margin, one renewal at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import httpx
import pytest
from tests.unit.client.doubles import (
    BROKER,
    NOW,
    FakeClock,
    ScriptedBroker,
    denied,
    error,
    issued,
    pending,
)

from grantline.client import (
    NO_RETRY,
    AccessDeniedError,
    ApprovalRequiredError,
    AsyncGrantlineClient,
    BrokerUnavailableError,
    Credential,
    Grant,
    GrantlineClient,
    RenewalPolicy,
)
from grantline.domain.models import RequestId

DB = "postgres://orders-db"


def numbered_grants(ttl_seconds: int, clock: FakeClock) -> ScriptedBroker:
    """A broker issuing req-1, req-2, ... each for ``ttl_seconds`` from the clock's now."""
    count = 0

    def issue(_: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        return issued(f"req-{count}", expires_at=clock.now() + timedelta(seconds=ttl_seconds))

    return ScriptedBroker([issue])


def client_for(
    broker: ScriptedBroker, clock: FakeClock, renewal: RenewalPolicy | None = None
) -> GrantlineClient:
    http = httpx.Client(transport=broker.transport())
    return GrantlineClient(
        BROKER, "a.b.c", renewal=renewal, retry=NO_RETRY, http_client=http, clock=clock
    )


def grant_for(seconds: float) -> Grant:
    expiry = NOW + timedelta(seconds=seconds)
    return Grant(RequestId("req"), Credential("jwt", expiry), None, received_at=NOW)


def test_the_margin_is_a_share_of_the_lifetime_capped() -> None:
    policy = RenewalPolicy(fraction=0.2, max_margin=timedelta(seconds=60))
    assert policy.margin(grant_for(3)) == timedelta(seconds=0.6)
    assert policy.margin(grant_for(3600)) == timedelta(seconds=60)
    assert policy.due_at(grant_for(3600)) == NOW + timedelta(seconds=3540)
    uncapped = RenewalPolicy(fraction=0.5, max_margin=None)
    assert uncapped.margin(grant_for(3600)) == timedelta(minutes=30)


def test_a_fresh_grant_is_reused_and_one_inside_the_margin_is_renewed() -> None:
    clock = FakeClock()
    broker = numbered_grants(100, clock)
    client = client_for(broker, clock, RenewalPolicy(fraction=0.2, max_margin=None))
    assert client.credential(DB, "db-read", 100).request_id == "req-1"
    clock.advance(79)
    assert client.credential(DB, "db-read", 100).request_id == "req-1"
    clock.advance(1)  # 20 s left: the margin
    assert client.credential(DB, "db-read", 100).request_id == "req-2"
    assert len(broker.requests) == 2


def test_different_requests_are_cached_apart() -> None:
    clock = FakeClock()
    client = client_for(numbered_grants(100, clock), clock)
    first = client.credential(DB, "db-read", 100, purpose="a")
    second = client.credential(DB, "db-read", 100, purpose="b")
    assert first.request_id != second.request_id
    assert client.credential(DB, "db-read", 100, purpose="a").request_id == first.request_id


def test_a_broker_outage_during_renewal_keeps_the_unexpired_grant() -> None:
    clock = FakeClock()
    ok = issued("req-1", expires_at=NOW + timedelta(seconds=100))
    broker = ScriptedBroker([ok, error(503, "store_unavailable")])
    client = client_for(broker, clock, RenewalPolicy(fraction=0.5, max_margin=None))
    client.credential(DB, "db-read", 100)
    clock.advance(60)  # inside the margin, not expired
    assert client.credential(DB, "db-read", 100).request_id == "req-1"
    clock.advance(40)  # expired now
    with pytest.raises(BrokerUnavailableError):
        client.credential(DB, "db-read", 100)


def test_a_denial_during_renewal_drops_the_grant_and_raises() -> None:
    clock = FakeClock()
    ok = issued("req-1", expires_at=NOW + timedelta(seconds=100))
    broker = ScriptedBroker([ok, denied("db-read was unbound from this workload")])
    client = client_for(broker, clock, RenewalPolicy(fraction=0.5, max_margin=None))
    client.credential(DB, "db-read", 100)
    clock.advance(60)
    with pytest.raises(AccessDeniedError):
        client.credential(DB, "db-read", 100)


def test_a_role_needing_approval_raises_approval_required_with_the_pending_request() -> None:
    clock = FakeClock()
    client = client_for(ScriptedBroker([pending("req-p")]), clock)
    with pytest.raises(ApprovalRequiredError) as raised:
        client.credential("s3://reports", "report-write", 900)
    assert raised.value.pending.request_id == "req-p"


def test_a_revoked_grant_is_no_longer_handed_out() -> None:
    clock = FakeClock()
    revoked = httpx.Response(200, json={"request_id": "req-1", "status": "revoked"})
    first, second = issued("req-1"), issued("req-2")
    client = client_for(ScriptedBroker([first, revoked, second]), clock)
    grant = client.credential(DB, "db-read", 600)
    client.revoke(grant, "done")
    assert client.credential(DB, "db-read", 600).request_id == "req-2"


def test_threads_wait_for_one_renewal_instead_of_each_asking() -> None:
    clock = FakeClock()
    slow_count = 0

    def slow(_: httpx.Request) -> httpx.Response:
        nonlocal slow_count
        slow_count += 1
        time.sleep(0.05)  # long enough that every thread arrives while it runs
        return issued(f"req-{slow_count}")

    client = client_for(ScriptedBroker([slow]), clock)
    seen: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: seen.append(client.credential(DB, "db-read", 600).request_id)
        )
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["req-1"] * 10
    assert slow_count == 1


async def test_tasks_wait_for_one_renewal_instead_of_each_asking() -> None:
    clock = FakeClock()
    count = 0

    async def slow(_: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        await asyncio.sleep(0.02)
        return issued(f"req-{count}")

    http = httpx.AsyncClient(transport=httpx.MockTransport(slow))
    async with AsyncGrantlineClient(
        BROKER, "a.b.c", retry=NO_RETRY, http_client=http, clock=clock
    ) as client:
        grants = await asyncio.gather(*(client.credential(DB, "db-read", 600) for _ in range(10)))
    assert {g.request_id for g in grants} == {"req-1"}
    assert count == 1


@pytest.mark.parametrize(
    "arguments", [{"fraction": 1.0}, {"fraction": -0.1}, {"max_margin": timedelta(seconds=-1)}]
)
def test_a_renewal_policy_that_makes_no_sense_is_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RenewalPolicy(**arguments)  # type: ignore[arg-type]


def test_break_glass_is_never_asked_for_through_credential() -> None:
    broker = ScriptedBroker([issued()])
    client = client_for(broker, FakeClock())
    with pytest.raises(ValueError, match="break-glass"):
        client.credential(DB, "db-admin", 600, break_glass=True, justification="outage")  # type: ignore[call-arg]
    assert broker.requests == []
