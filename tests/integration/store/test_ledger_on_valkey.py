"""The log and ledger against a real Valkey: one chain from many writers, atomic state, no dupes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from grantline.domain.errors import DependencyUnavailableError
from grantline.domain.models import ActiveGrant, RequestId
from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.checkpoint import make_checkpoint
from grantline.evidence.signer import LocalEd25519Signer
from grantline.evidence.verify import verify_export
from grantline.store.connection import StoreSettings, connect
from grantline.store.grants import RedisGrants
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import ActiveAdd, AppendOutcome, Effects, RedisLog, SealedEntry
from grantline.store.tree import grow

pytestmark = pytest.mark.integration

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis_client = connect(StoreSettings(redis_url))
    yield redis_client
    await redis_client.aclose()


def draft(request_id: str, event: str = "requested", effects: Effects | None = None) -> Draft:
    return Draft(request_id, event, NOW, {"n": 1}, effects or Effects())


async def all_lines(log: RedisLog) -> list[bytes]:
    return [line for _, line in await log.read(0, 100_000)]


def verifies(lines: list[bytes]) -> bool:
    head = ChainHead.genesis()
    if lines:
        from grantline.evidence.record import chain_hash  # noqa: PLC0415

        head = ChainHead(len(lines), chain_hash(lines[-1]))
    checkpoint = make_checkpoint(head, origin="test", at=NOW, signer=SIGNER)
    report = verify_export([*lines, checkpoint], {SIGNER.kid: SIGNER.public_key()})
    return report.ok and report.records == len(lines)


async def test_concurrent_appends_from_several_ledgers_keep_one_unbroken_chain(
    client: aioredis.Redis,
) -> None:
    replicas = [Ledger(RedisLog(client), SIGNER) for _ in range(3)]

    async def writer(ledger: Ledger, name: str) -> None:
        for i in range(40):
            await ledger.append([draft(f"{name}-{i}"), draft(f"{name}-{i}", "evaluated")])

    await asyncio.gather(*(writer(ledger, f"r{n}") for n, ledger in enumerate(replicas)))
    lines = await all_lines(RedisLog(client))
    assert len(lines) == 240
    assert verifies(lines)


async def test_a_group_of_drafts_is_appended_contiguously(client: aioredis.Redis) -> None:
    ledger = Ledger(RedisLog(client), SIGNER)
    await asyncio.gather(
        *(
            ledger.append([draft(f"q{i}"), draft(f"q{i}", "evaluated"), draft(f"q{i}", "issued")])
            for i in range(30)
        )
    )
    lines = await all_lines(RedisLog(client))
    ids = [line.split(b'"request_id":"')[1].split(b'"')[0] for line in lines]
    for start in range(0, len(ids), 3):
        assert len(set(ids[start : start + 3])) == 1


async def test_retrying_an_applied_batch_appends_nothing_twice(client: aioredis.Redis) -> None:
    log = RedisLog(client)
    head = ChainHead.genesis()
    line, new_head = seal_next(
        head, request_id="r", event="requested", at=NOW, data={}, signer=SIGNER
    )
    entry = SealedEntry(1, line, "r", Effects())
    first = await log.compare_and_append(head, new_head, [entry], "batch-1", writer="w")
    retry = await log.compare_and_append(head, new_head, [entry], "batch-1", writer="w")
    assert first.applied and retry.applied
    assert retry.head == new_head
    assert len(await all_lines(log)) == 1


async def test_a_stale_head_is_refused_and_the_real_head_reported(client: aioredis.Redis) -> None:
    log = RedisLog(client)
    await Ledger(log, SIGNER).append([draft("a")])
    line, new_head = seal_next(
        ChainHead.genesis(), request_id="b", event="requested", at=NOW, data={}, signer=SIGNER
    )
    outcome = await log.compare_and_append(
        ChainHead.genesis(), new_head, [SealedEntry(1, line, "b", Effects())], "batch-2", writer="w"
    )
    assert not outcome.applied
    assert outcome.head.seq == 1
    assert len(await all_lines(log)) == 1


async def test_a_writer_that_lost_the_race_for_the_head_appends_next(
    client: aioredis.Redis,
) -> None:
    """Fairness between replicas: the writer refused for a stale head gets the next turn, so
    one that keeps winning the race cannot starve it; the turn ends with its append."""
    log = RedisLog(client)
    frontiers: dict[int, list[bytes]] = {0: []}

    async def append(head: ChainHead, request_id: str, writer: str) -> AppendOutcome:
        line, new_head = seal_next(
            head, request_id=request_id, event="requested", at=NOW, data={}, signer=SIGNER
        )
        frontier = list(frontiers[head.seq])
        nodes = grow(head.seq, frontier, [line])
        entry = SealedEntry(new_head.seq, line, request_id, Effects())
        outcome = await log.compare_and_append(
            head, new_head, [entry], f"{writer}-{head.seq}", nodes, writer=writer
        )
        if outcome.applied:
            frontiers[new_head.seq] = frontier
        return outcome

    genesis = ChainHead.genesis()
    assert (await append(genesis, "fast-1", "fast")).applied
    lost = await append(genesis, "slow-1", "slow")
    assert not lost.applied and lost.head.seq == 1
    # The fast writer holds the real head, yet must wait while the loser has the turn.
    waited = await append(lost.head, "fast-2", "fast")
    assert not waited.applied and waited.head == lost.head
    retried = await append(lost.head, "slow-1", "slow")
    assert retried.applied
    assert (await append(retried.head, "fast-2", "fast")).applied
    lines = await all_lines(log)
    assert [line.split(b'"request_id":"')[1].split(b'"')[0] for line in lines] == [
        b"fast-1",
        b"slow-1",
        b"fast-2",
    ]
    assert verifies(lines)


async def test_state_effects_commit_with_their_record(client: aioredis.Redis) -> None:
    ledger, grants = Ledger(RedisLog(client), SIGNER), RedisGrants(client)
    until = NOW + timedelta(minutes=10)
    grant = ActiveGrant(RequestId("req-1"), "deployer", "k8s://prod", until)
    issued = Effects(
        request={"status": "issued", "subject": "svc"},
        active_add=ActiveAdd("svc", grant, NOW),
        jti="token-1",
    )
    await ledger.append([draft("req-1", "issued", issued)])
    assert (await grants.request("req-1") or {})["status"] == "issued"
    assert await grants.request_for_token("token-1") == "req-1"
    active = await grants.active_for("svc", NOW)
    assert active == [grant]
    assert await grants.active_for("svc", until + timedelta(seconds=1)) == []
    await ledger.append(
        [draft("req-1", "revoked", Effects(request={"status": "revoked"}, active_remove="svc"))]
    )
    assert await grants.active_for("svc", NOW) == []
    assert await RedisLog(client).lineage("req-1") == await all_lines(RedisLog(client))


async def test_a_stopped_store_fails_fast_with_dependency_unavailable() -> None:
    client = connect(StoreSettings("redis://127.0.0.1:1/0", socket_timeout=0.5, retries=1))
    try:
        with pytest.raises(DependencyUnavailableError):
            await Ledger(RedisLog(client), SIGNER).append([draft("x")])
        with pytest.raises(DependencyUnavailableError):
            await RedisGrants(client).active_for("svc", NOW)
    finally:
        await client.aclose()


async def test_expired_grants_are_pruned_when_a_new_one_arrives(client: aioredis.Redis) -> None:
    ledger = Ledger(RedisLog(client), SIGNER)
    old = ActiveGrant(RequestId("old"), "r", "t", NOW - timedelta(seconds=1))
    new = ActiveGrant(RequestId("new"), "r", "t", NOW + timedelta(minutes=1))
    await ledger.append([draft("old", "issued", Effects(active_add=ActiveAdd("s", old, NOW)))])
    await ledger.append([draft("new", "issued", Effects(active_add=ActiveAdd("s", new, NOW)))])
    assert await client.zcard("{grantline}:active:s") == 1
    assert await client.zcard('{grantline}:active:s:["r","t"]') == 1


async def test_a_role_granted_again_and_again_reads_as_one_grant_until_each_is_revoked(
    client: aioredis.Redis,
) -> None:
    ledger, grants = Ledger(RedisLog(client), SIGNER), RedisGrants(client)
    lasting = [
        ActiveGrant(RequestId(f"g{i}"), "db-read", "pg://x", NOW + timedelta(minutes=i))
        for i in (5, 9, 2)
    ]
    other = ActiveGrant(RequestId("w"), "db-write", "pg://x", NOW + timedelta(minutes=1))
    for grant in [*lasting, other]:
        effects = Effects(active_add=ActiveAdd("s", grant, NOW))
        await ledger.append([draft(grant.request_id, "issued", effects)])

    assert sorted(await grants.active_for("s", NOW), key=lambda g: g.role) == [lasting[1], other]

    await ledger.append([draft("g9", "revoked", Effects(active_remove="s"))])
    assert lasting[0] in await grants.active_for("s", NOW)  # the next longest takes over
    for request_id in ("g5", "g2"):
        await ledger.append([draft(request_id, "revoked", Effects(active_remove="s"))])
    assert await grants.active_for("s", NOW) == [other]
