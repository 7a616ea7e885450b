"""The Merkle tree kept beside the log in a real Valkey: always exactly the log's records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from grantline.evidence.merkle import leaf_hash, root_of, verify_consistency, verify_inclusion
from grantline.evidence.signer import LocalEd25519Signer
from grantline.store import keys
from grantline.store.connection import StoreSettings, connect
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import RedisLog
from grantline.store.tree import RedisTree

pytestmark = pytest.mark.integration

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis_client = connect(StoreSettings(redis_url))
    yield redis_client
    await redis_client.aclose()


async def leaves(client: aioredis.Redis) -> list[bytes]:
    return [leaf_hash(line) for _, line in await RedisLog(client).read(0, 100_000)]


async def test_the_tree_follows_appends_from_several_replicas(client: aioredis.Redis) -> None:
    replicas = [Ledger(RedisLog(client), SIGNER) for _ in range(3)]

    async def writer(ledger: Ledger, name: str) -> None:
        for i in range(25):
            await ledger.append([Draft(f"{name}-{i}", "requested", NOW, {"i": i})])

    await asyncio.gather(*(writer(ledger, f"r{n}") for n, ledger in enumerate(replicas)))
    hashes = await leaves(client)
    tree = RedisTree(client)
    assert await tree.size() == len(hashes) == 75
    for size in (1, 2, 3, 7, 8, 31, 64, 75):
        assert await tree.root(size) == root_of(hashes[:size])
    root = await tree.root(75)
    for index in (0, 1, 40, 63, 64, 74):
        proof = await tree.inclusion(index, 75)
        assert verify_inclusion(hashes[index], index, 75, proof, root)
    for old in (1, 5, 32, 50):
        proof = await tree.consistency(old, 75)
        assert verify_consistency(old, 75, root_of(hashes[:old]), root, proof)


async def test_a_log_without_its_tree_gets_one_built(client: aioredis.Redis) -> None:
    ledger = Ledger(RedisLog(client), SIGNER)
    for i in range(20):
        await ledger.append([Draft(f"q{i}", "requested", NOW, {})])
    # As if written before the tree existed.
    await client.delete(*(keys.tree(level) for level in range(8)))
    tree = RedisTree(client)
    assert await tree.rebuild(RedisLog(client)) is True
    assert await tree.root(20) == root_of(await leaves(client))
    assert await tree.rebuild(RedisLog(client)) is False
    # And the ledger goes on appending onto it.
    await Ledger(RedisLog(client), SIGNER).append([Draft("after", "requested", NOW, {})])
    assert await tree.root(21) == root_of(await leaves(client))


async def test_a_tree_out_of_step_with_the_log_is_refused_and_rebuilt(
    client: aioredis.Redis,
) -> None:
    ledger = Ledger(RedisLog(client), SIGNER)
    for i in range(5):
        await ledger.append([Draft(f"q{i}", "requested", NOW, {})])
    # A stray leaf, as a failed write or an old replica could leave: the cached head still
    # matches, but nodes appended now would shift the tree for good.
    await client.append(keys.tree(0), b"\x00" * 32)
    await ledger.append([Draft("after", "requested", NOW, {})])
    assert await RedisTree(client).root(6) == root_of(await leaves(client))
