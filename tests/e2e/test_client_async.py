"""AsyncGrantlineClient and AsyncGrantVerifier against a served broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from tests.conftest import Served, serve

from grantline.client import (
    AccessDeniedError,
    ApprovalRequiredError,
    AsyncGrantlineClient,
    AsyncGrantVerifier,
    Grant,
    InvalidGrantError,
    Pending,
    RenewalPolicy,
    VerificationPolicy,
)

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
ALICE, SAM = "user:alice", "user:sam"
ORDERS_SERVICE = "spiffe://example.org/orders-service"
DB = "postgres://orders-db"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    broker = serve(tmp_path_factory.mktemp("async-client") / "home")
    yield broker
    broker.stop()


async def test_a_grant_and_a_denial(served: Served) -> None:
    async with AsyncGrantlineClient(served.url, served.token(CI)) as ci:
        grant = await ci.request_access(DB, "db-read", 600, purpose="async export")
        with pytest.raises(AccessDeniedError) as denied:
            await ci.request_access(DB, "db-read", 7200)
    assert isinstance(grant, Grant)
    assert grant.decision is not None
    assert grant.decision.allow is True
    assert any("3600" in reason for reason in denied.value.reasons)
    assert denied.value.request_id


async def test_tasks_share_one_grant_and_it_is_renewed_before_expiry(served: Served) -> None:
    renewal = RenewalPolicy(fraction=0.5, max_margin=None)
    async with AsyncGrantlineClient(served.url, served.token(CI), renewal=renewal) as ci:
        grants = await asyncio.gather(*(ci.credential(DB, "db-read", 4) for _ in range(10)))
        assert len({g.request_id for g in grants}) == 1
        first = grants[0]
        wait = (renewal.due_at(first) - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(wait, 0) + 0.05)
        renewed = await ci.credential(DB, "db-read", 4)
    assert renewed.request_id != first.request_id


async def test_approval_then_collect(served: Served) -> None:
    async with (
        AsyncGrantlineClient(served.url, served.token(ALICE)) as alice,
        AsyncGrantlineClient(served.url, served.token(SAM)) as sam,
    ):
        with pytest.raises(ApprovalRequiredError):
            await alice.credential("s3://reports", "report-write", 900)
        pending = await alice.request_access("s3://reports", "report-write", 900)
        assert isinstance(pending, Pending)
        waiting = asyncio.create_task(alice.wait_for_approval(pending, poll_interval=0.1))
        approved = await sam.approve(pending.request_id, "looks right")
        grant = await asyncio.wait_for(waiting, timeout=60)
    assert approved.status == "issued"
    assert grant.request_id == pending.request_id


async def test_the_async_verifier_accepts_a_live_token_and_refuses_it_once_revoked(
    served: Served,
) -> None:
    policy = VerificationPolicy(introspect=True, introspection_cache=timedelta(0))
    async with (
        AsyncGrantlineClient(served.url, served.token(CI)) as ci,
        AsyncGrantVerifier(
            served.url, DB, policy=policy, token=served.token(ORDERS_SERVICE)
        ) as verifier,
    ):
        grant = await ci.request_access(DB, "db-read", 600)
        assert isinstance(grant, Grant)
        verified = await verifier.verify_request(
            "GET", "https://orders.example/", {"Authorization": f"Bearer {grant.token}"}
        )
        assert verified.request_id == grant.request_id
        await ci.revoke(grant, "done")
        with pytest.raises(InvalidGrantError) as refused:
            await verifier.verify(grant.token)
    assert refused.value.code == "revoked"
