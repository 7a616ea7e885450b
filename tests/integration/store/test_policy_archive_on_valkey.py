"""Decision inputs and policy bundles kept by the same atomic append as their records."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from grantline.domain.errors import IntegrityError
from grantline.evidence.signer import LocalEd25519Signer
from grantline.store import keys
from grantline.store.connection import StoreSettings, connect
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import Effects, RedisLog
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
    effects = Effects(keep_input=KeptInput(digest, canonical, BUNDLE))
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
    assert await reader.inputs(digests) == dict(
        zip(digests, [b'{"n":1}', b'{"n":2}', b'{"n":3}'], strict=True)
    )
    assert await reader.bundle(BUNDLE) == FILES
    assert await reader.bundle("sha256:" + "0" * 64) is None
    # Kept once: the first append carried the bundle, the second did not ask again.
    assert asked == [BUNDLE]
    assert 0 < await client.pttl(keys.policy_input(digests[0])) <= 3600 * 1000


async def test_an_input_is_kept_only_when_its_record_is(client: aioredis.Redis) -> None:
    log = RedisLog(client)
    ledger = Ledger(log, SIGNER, archive=PolicyArchive(lambda _: FILES, 0))
    await ledger.append([deciding("r1", b'{"n":1}')])
    kept = await client.keys(keys.policy_input("*"))
    assert len(kept) == 1 and len(await log.read(0, 10)) == 1
    # Retention 0 keeps inputs for good.
    assert await client.pttl(kept[0]) == -1


async def test_an_unreadable_kept_value_is_an_integrity_error(client: aioredis.Redis) -> None:
    await client.hset(keys.POLICY_BUNDLES, BUNDLE, "not base64 zlib")
    with pytest.raises(IntegrityError):
        await PolicyArchiveReader(client).bundle(BUNDLE)
    assert unpack(pack(b"x" * 1000)) == b"x" * 1000
    with pytest.raises(IntegrityError):
        unpack(pack(b"abc")[:-4])
