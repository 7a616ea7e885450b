"""Separation of duties at append time against a real Valkey: the check and the grant are one
atomic step, so two conflicting grants decided at the same time cannot both be written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from grantline.domain.errors import DutiesConflictError
from grantline.domain.models import ActiveGrant, RequestId
from grantline.evidence.signer import LocalEd25519Signer
from grantline.store import keys
from grantline.store.connection import StoreSettings, connect
from grantline.store.grants import RedisGrants
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import ActiveAdd, Effects, Exclusion, RedisLog

pytestmark = pytest.mark.integration

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SUBJECT = "spiffe://example.org/release-bot"
CONFLICTS = {"deployer": ("prod-approver",), "prod-approver": ("deployer",)}


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis_client = connect(StoreSettings(redis_url))
    yield redis_client
    await redis_client.aclose()


def grant(
    request_id: str,
    role: str,
    *,
    subject: str = SUBJECT,
    until: datetime = NOW + timedelta(minutes=30),
    exclude: bool = True,
) -> list[Draft]:
    """A request's records as the broker writes them for a grant: requested, then issued
    with the grant and (unless told not to) the roles it may not be held with."""
    exclusion = Exclusion(subject, CONFLICTS[role], NOW) if exclude else None
    effects = Effects(
        request={"status": "issued", "role": role},
        active_add=ActiveAdd(
            subject, ActiveGrant(RequestId(request_id), role, "k8s://prod", until), NOW
        ),
        exclude=exclusion,
    )
    return [
        Draft(request_id, "requested", NOW, {"role": role}),
        Draft(request_id, "issued", NOW, {"role": role}, effects),
    ]


async def log_size(client: aioredis.Redis) -> int:
    return int(await client.xlen(keys.LOG))


async def test_a_grant_is_refused_whole_when_the_subject_already_holds_a_conflicting_role(
    client: aioredis.Redis,
) -> None:
    ledger = Ledger(RedisLog(client), SIGNER)
    await ledger.append(grant("r1", "deployer"))
    head = await client.get(keys.HEAD)

    with pytest.raises(DutiesConflictError) as refused:
        await ledger.append(grant("r2", "prod-approver"))

    assert (refused.value.request_id, refused.value.role) == ("r2", "deployer")
    assert refused.value.code == "separation_of_duties"
    # Nothing of the refused group was written: no record, no state, no active grant.
    assert await log_size(client) == 2
    assert await client.get(keys.HEAD) == head
    assert not await client.exists(keys.request("r2"))
    active = await RedisGrants(client).active_for(SUBJECT, NOW)
    assert [g.role for g in active] == ["deployer"]


async def test_an_expired_or_another_subjects_grant_does_not_conflict(
    client: aioredis.Redis,
) -> None:
    ledger = Ledger(RedisLog(client), SIGNER)
    await ledger.append(grant("old", "deployer", until=NOW - timedelta(seconds=1)))
    await ledger.append(grant("theirs", "deployer", subject="user:dan", exclude=False))

    await ledger.append(grant("mine", "prod-approver"))

    assert await log_size(client) == 6


async def test_a_revoked_grant_no_longer_conflicts(client: aioredis.Redis) -> None:
    ledger = Ledger(RedisLog(client), SIGNER)
    await ledger.append(grant("r1", "deployer"))
    revoked = Effects(request={"status": "revoked"}, active_remove=SUBJECT)
    await ledger.append([Draft("r1", "revoked", NOW, {}, revoked)])

    await ledger.append(grant("r2", "prod-approver"))

    assert {g.role for g in await RedisGrants(client).active_for(SUBJECT, NOW)} == {"prod-approver"}


async def test_conflicting_grants_in_one_group_commit_write_only_the_first_and_keep_the_rest(
    client: aioredis.Redis,
) -> None:
    # Appends made at the same time by one process share one write: the second of two
    # conflicting grants is refused by the first in the same batch, the unrelated group
    # that shared the write goes again and is appended.
    ledger = Ledger(RedisLog(client), SIGNER)
    results = await asyncio.gather(
        ledger.append(grant("a", "deployer")),
        ledger.append(grant("b", "prod-approver")),
        ledger.append(grant("c", "deployer", subject="user:dan")),
        return_exceptions=True,
    )

    assert isinstance(results[0], list)
    assert isinstance(results[1], DutiesConflictError)
    assert results[1].role == "deployer"
    assert isinstance(results[2], list)
    assert await log_size(client) == 4


async def test_simultaneous_conflicting_grants_from_three_replicas_never_both_issue(
    client: aioredis.Redis,
) -> None:
    # Each pair: the same subject asks two replicas at once for two roles kept apart. The
    # decision each replica made before writing saw neither grant; the write must refuse one.
    replicas = [Ledger(RedisLog(client), SIGNER) for _ in range(3)]
    pairs = 40

    async def attempt(ledger: Ledger, request_id: str, role: str, subject: str) -> bool:
        try:
            await ledger.append(grant(request_id, role, subject=subject))
        except DutiesConflictError:
            return False
        return True

    outcomes = await asyncio.gather(
        *(
            attempt(replicas[(n + k) % 3], f"p{n}-{role}", role, f"user:{n}")
            for n in range(pairs)
            for k, role in enumerate(("deployer", "prod-approver"))
        )
    )

    for n in range(pairs):
        assert outcomes[2 * n] != outcomes[2 * n + 1], f"pair {n}: exactly one grant issues"
        held = await RedisGrants(client).active_for(f"user:{n}", NOW)
        assert len(held) == 1
    assert await log_size(client) == 2 * pairs
