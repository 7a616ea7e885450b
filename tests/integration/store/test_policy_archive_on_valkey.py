"""Decision inputs and policy bundles kept by the same atomic append as their records."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from grantline.domain.errors import IntegrityError
from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.signer import LocalEd25519Signer
from grantline.store import keys
from grantline.store.connection import StoreSettings, connect
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import Effects, RedisLog, SealedEntry
from grantline.store.policy_archive import (
    KeptInput,
    PolicyArchive,
    PolicyArchiveReader,
    pack,
    unpack,
)

pytestmark = pytest.mark.integration

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
BUNDLE = "sha256:" + "b" * 64
FILES = {"grantline.rego": b"package grantline\n", "data.json": b'{"grantline": {}}'}


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis_client = connect(StoreSettings(redis_url))
    yield redis_client
    await redis_client.aclose()


def deciding(request_id: str, canonical: bytes) -> Draft:
    digest = "sha256:" + hashlib.sha256(canonical).hexdigest()
    effects = Effects(keep_input=KeptInput(digest, pack(canonical), BUNDLE))
    return Draft(request_id, "evaluated", NOW, {"input_digest": digest}, effects)


async def test_each_input_is_kept_with_its_record_and_each_bundle_once(
    client: aioredis.Redis,
) -> None:
    asked: list[str] = []

    def files_of(digest: str) -> dict[str, bytes] | None:
        asked.append(digest)
        return FILES if digest == BUNDLE else None

    ledger = Ledger(RedisLog(client), SIGNER, archive=PolicyArchive(files_of, 3600))
    await ledger.append([deciding("r1", b'{"n":1}'), deciding("r1", b'{"n":2}')])
    await ledger.append([deciding("r2", b'{"n":3}')])

    reader = PolicyArchiveReader(client)
    digests = ["sha256:" + hashlib.sha256(b'{"n":%d}' % n).hexdigest() for n in (1, 2, 3)]
    found, unreadable = await reader.inputs(digests)
    assert unreadable == []
    assert found == dict(zip(digests, [b'{"n":1}', b'{"n":2}', b'{"n":3}'], strict=True))
    assert await reader.bundle(BUNDLE) == FILES
    assert await reader.bundle("sha256:" + "0" * 64) is None
    # Kept once: the first append carried the bundle, the second did not ask again.
    assert asked == [BUNDLE]
    assert 0 < await client.pttl(keys.policy_input(digests[0])) <= 3600 * 1000


async def test_retention_is_set_as_chosen_however_long(client: aioredis.Redis) -> None:
    # 1,000 days in milliseconds: a number some Redis versions hand to SET in exponent form.
    ledger = Ledger(RedisLog(client), SIGNER, archive=PolicyArchive(lambda _: FILES, 1000 * 86400))
    await ledger.append([deciding("r1", b'{"n":1}')])
    (kept,) = await client.keys(keys.policy_input("*"))
    assert 999 * 86400 * 1000 < await client.pttl(kept) <= 1000 * 86400 * 1000
    forever = Ledger(RedisLog(client), SIGNER, archive=PolicyArchive(lambda _: FILES, 0))
    await forever.append([deciding("r2", b'{"n":2}')])
    assert await client.pttl(keys.policy_input(_digest(b'{"n":2}'))) == -1


async def test_a_refused_append_keeps_nothing(client: aioredis.Redis) -> None:
    log = RedisLog(client)
    await Ledger(log, SIGNER).append([Draft("r0", "requested", NOW, {"n": 0})])
    # Sealed on a head that is no longer the log's: the script refuses before any write.
    stale = ChainHead.genesis()
    line, head = seal_next(
        stale, request_id="r1", event="evaluated", at=NOW, data={}, signer=SIGNER
    )
    kept = deciding("r1", b'{"n":1}').effects
    outcome = await log.compare_and_append(
        stale, head, [SealedEntry(head.seq, line, "r1", kept)], "batch-x", writer="w"
    )
    assert not outcome.applied
    assert await client.keys(keys.policy_input("*")) == []
    assert await client.hlen(keys.POLICY_BUNDLES) == 0


async def test_a_bundle_the_store_lost_is_sent_again(client: aioredis.Redis) -> None:
    ledger = Ledger(RedisLog(client), SIGNER, archive=PolicyArchive(lambda _: FILES, 3600))
    await ledger.append([deciding("r1", b'{"n":1}')])
    await client.delete(keys.POLICY_BUNDLES)  # a restore from an older snapshot, say
    await ledger.append([deciding("r2", b'{"n":2}')])
    assert await PolicyArchiveReader(client).bundle(BUNDLE) == FILES
    assert len(await RedisLog(client).read(0, 10)) == 2


async def test_without_an_archive_no_input_is_kept(client: aioredis.Redis) -> None:
    await Ledger(RedisLog(client), SIGNER).append([deciding("r1", b'{"n":1}')])
    assert await client.keys(keys.policy_input("*")) == []


def _digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


async def test_an_unreadable_kept_value_is_reported_not_returned(client: aioredis.Redis) -> None:
    await client.hset(keys.POLICY_BUNDLES, BUNDLE, "not base64 zlib")
    with pytest.raises(IntegrityError):
        await PolicyArchiveReader(client).bundle(BUNDLE)
    good, bad = _digest(b"good"), _digest(b"bad")
    await client.set(keys.policy_input(good), pack(b"good"))
    await client.set(keys.policy_input(bad), "garbage!")
    found, unreadable = await PolicyArchiveReader(client).inputs([good, bad])
    assert (found, unreadable) == ({good: b"good"}, [bad])
    assert unpack(pack(b"x" * 1000)) == b"x" * 1000
    with pytest.raises(IntegrityError):
        unpack(pack(b"abc")[:-4])
