"""The Merkle tree's levels in chunks (store/tree.py): names, reads across chunk boundaries,
proofs equal to the pure-Python ones, and stores written before levels were chunked.

Most tests shrink the chunk to 4 entries, so a log of some dozens of records spans many chunks
at several levels; keys.TREE_CHUNK is read when the store objects are made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from grantline.domain.errors import IntegrityError
from grantline.evidence.merkle import (
    PerfectNode,
    consistency_proof,
    frontier_append,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_inclusion,
)
from grantline.evidence.signer import LocalEd25519Signer
from grantline.store import keys
from grantline.store.connection import StoreSettings, connect
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import FRONTIER_LUA, RedisLog, tree_lua
from grantline.store.tree import RedisTree

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SMALL = 4


def test_the_real_chunk_holds_2_to_the_20_entries() -> None:
    assert keys.TREE_CHUNK == 2**20
    assert keys.tree_entry(0, 0) == ("{grantline}:tree:0", 0)
    assert keys.tree_entry(0, 2**20 - 1) == ("{grantline}:tree:0", (2**20 - 1) * 32)
    # Entry 2**20 is the first of the second chunk.
    assert keys.tree_entry(0, 2**20) == ("{grantline}:tree:0:1", 0)
    assert keys.tree_entry(5, 3 * 2**20 + 7) == ("{grantline}:tree:5:3", 7 * 32)
    # 32 MiB a chunk: far below the 512 MiB a Redis string may hold.
    assert keys.TREE_CHUNK * 32 == 32 * 2**20


def test_chunk_zero_keeps_the_name_a_whole_level_had() -> None:
    assert keys.tree(7) == keys.tree(7, 0) == "{grantline}:tree:7"
    assert keys.tree_entry(2, 9, chunk_size=SMALL) == ("{grantline}:tree:2:2", 32)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis_client = connect(StoreSettings(redis_url))
    yield redis_client
    await redis_client.aclose()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "TREE_CHUNK", SMALL)


async def leaves(client: aioredis.Redis) -> list[bytes]:
    return [leaf_hash(line) for _, line in await RedisLog(client).read(0, 100_000)]


def levels_of(hashes: list[bytes]) -> dict[int, list[bytes]]:
    """Every perfect node by level, in pure Python."""
    frontier: list[bytes] = []
    levels: dict[int, list[bytes]] = {}
    for size, leaf in enumerate(hashes):
        for level, node in frontier_append(size, frontier, leaf):
            levels.setdefault(level, []).append(node)
    return levels


def perfect_of(hashes: list[bytes]) -> PerfectNode:
    levels = levels_of(hashes)
    return lambda level, index: levels[level][index]


async def tree_keys(client: aioredis.Redis) -> set[str]:
    return {key.decode() async for key in client.scan_iter(match=keys.TREE_MATCH)}


async def fill(client: aioredis.Redis, records: int) -> None:
    """``records`` records from three replicas, in groups of 1 to 7 (a group of 7 crosses a
    chunk of 4 within one append)."""
    replicas = [Ledger(RedisLog(client), SIGNER) for _ in range(3)]
    sizes = [1 + n % 7 for n in range(records)]
    groups: list[int] = []
    while sum(groups) < records:
        groups.append(min(sizes[len(groups)], records - sum(groups)))

    async def writer(n: int) -> None:
        for g, size in enumerate(groups):
            if g % 3 == n:
                drafts = [Draft(f"g{g}-{i}", "requested", NOW, {"i": i}) for i in range(size)]
                await replicas[n].append(drafts)

    await asyncio.gather(*(writer(n) for n in range(3)))


def assert_chunked(raw: dict[str, bytes], hashes: list[bytes], chunk: int) -> None:
    """The store holds each level of the pure-Python tree, cut in chunks of ``chunk``."""
    expected: dict[str, bytes] = {}
    for level, nodes in levels_of(hashes).items():
        for start in range(0, len(nodes), chunk):
            name = f"{{grantline}}:tree:{level}" + (f":{start // chunk}" if start else "")
            expected[name] = b"".join(nodes[start : start + chunk])
    assert raw == expected


async def raw_tree(client: aioredis.Redis) -> dict[str, bytes]:
    names = sorted(await tree_keys(client))
    values = await client.mget(names) if names else []
    return {name: bytes(value) for name, value in zip(names, values, strict=True) if value}


@pytest.mark.integration
async def test_lua_and_python_address_entries_alike(client: aioredis.Redis) -> None:
    script = tree_lua(
        FRONTIER_LUA + "return {tree_entry(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))}",
        keys.TREE_CHUNK,
    )
    for level, index in [(0, 0), (0, 2**20 - 1), (0, 2**20), (3, 5 * 2**20 + 9), (0, 2**40 + 3)]:
        key, offset = await client.eval(script, 0, keys.PREFIX, level, index)
        assert (key.decode(), offset) == keys.tree_entry(level, index)


@pytest.mark.integration
@pytest.mark.usefixtures("small_chunks")
async def test_roots_and_proofs_over_many_chunks_equal_pure_python(
    client: aioredis.Redis,
) -> None:
    await fill(client, 75)
    hashes = await leaves(client)
    assert len(hashes) == 75
    # 75 leaves: 19 chunks at level 0, 10 at level 1, ... the last ones partly filled.
    assert_chunked(await raw_tree(client), hashes, SMALL)
    perfect = perfect_of(hashes)
    tree = RedisTree(client)
    assert await tree.size() == 75
    for size in range(1, 76):
        assert await tree.root(size) == root_of(hashes[:size])
    for size in (1, 4, 5, 17, 32, 33, 64, 75):
        for index in range(size):
            assert await tree.inclusion(index, size) == inclusion_proof(index, size, perfect)
        for old in range(1, size + 1):
            assert await tree.consistency(old, size) == consistency_proof(old, size, perfect)


@pytest.mark.integration
@pytest.mark.usefixtures("small_chunks")
async def test_reads_crossing_a_chunk_boundary(client: aioredis.Redis) -> None:
    await fill(client, 13)
    hashes = await leaves(client)
    tree = RedisTree(client)
    # Consecutive leaves across the boundaries after 4, 8 and 12, fetched in one read.
    assert [await tree.leaf(i) for i in range(13)] == hashes
    proofs = await tree.inclusions(list(range(2, 11)), 13)
    root = root_of(hashes)
    for index, proof in zip(range(2, 11), proofs, strict=True):
        assert verify_inclusion(hashes[index], index, 13, proof, root)
    # The range [3, 9) of leaves, its halves from two chunks of level 0 and one of level 1.
    assert await tree.root(9) == root_of(hashes[:9])
    with pytest.raises(IntegrityError):
        await tree.leaf(13)  # the next chunk's first entry does not exist yet


@pytest.mark.integration
async def test_a_store_of_the_old_one_string_layout_reads_and_grows(
    client: aioredis.Redis,
) -> None:
    await fill(client, 20)
    hashes = await leaves(client)
    # Exactly what the layout before chunks wrote: each level one string under its old name.
    await client.delete(*await tree_keys(client))
    for level, nodes in levels_of(hashes).items():
        await client.set(f"{{grantline}}:tree:{level}", b"".join(nodes))
    tree = RedisTree(client)
    perfect = perfect_of(hashes)
    assert await tree.root(20) == root_of(hashes)
    assert await tree.inclusion(13, 20) == inclusion_proof(13, 20, perfect)
    assert await tree.consistency(7, 20) == consistency_proof(7, 20, perfect)
    assert await tree.rebuild(RedisLog(client)) is False  # nothing to rebuild
    ledger = Ledger(RedisLog(client), SIGNER)
    for i in range(10):
        await ledger.append([Draft(f"after-{i}", "requested", NOW, {})])
    hashes = await leaves(client)
    assert await tree.root(30) == root_of(hashes)
    assert_chunked(await raw_tree(client), hashes, keys.TREE_CHUNK)  # still one string a level


@pytest.mark.integration
async def test_an_old_level_longer_than_a_chunk_is_built_again_in_chunks(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(client, 10)  # at the real chunk size: one string a level, as before chunks
    monkeypatch.setattr(keys, "TREE_CHUNK", SMALL)  # now 10 leaves overflow chunk 0
    tree = RedisTree(client)
    with pytest.raises(IntegrityError, match="full chunks"):
        await tree.head_and_frontier()
    # The ledger finds the tree behind, builds it again in chunks and appends on it.
    await Ledger(RedisLog(client), SIGNER).append([Draft("next", "requested", NOW, {})])
    hashes = await leaves(client)
    assert_chunked(await raw_tree(client), hashes, SMALL)
    assert await tree.root(11) == root_of(hashes)


@pytest.mark.integration
@pytest.mark.usefixtures("small_chunks")
async def test_a_rebuild_drops_stale_chunks_past_the_log(client: aioredis.Redis) -> None:
    await fill(client, 10)
    # Left by a tree longer than the log: met only once the log reaches them.
    await client.set(keys.tree(0, 5), b"\x01" * 64)
    await client.set(keys.tree(1, 3), b"\x02" * 32)
    await client.delete(keys.tree(0, 1))  # and the tree is broken
    tree = RedisTree(client)
    assert await tree.rebuild(RedisLog(client)) is True
    ledger = Ledger(RedisLog(client), SIGNER)
    for i in range(20):
        await ledger.append([Draft(f"after-{i}", "requested", NOW, {})])
    hashes = await leaves(client)
    assert_chunked(await raw_tree(client), hashes, SMALL)
    assert await tree.root(30) == root_of(hashes)


@pytest.mark.integration
@pytest.mark.usefixtures("small_chunks")
async def test_a_short_or_torn_chunk_is_refused_and_rebuilt(client: aioredis.Redis) -> None:
    await fill(client, 6)
    tree = RedisTree(client)
    full = bytes(await client.get(keys.tree(0)) or b"")
    await client.set(keys.tree(0), full[: 3 * 32])  # chunk 0 lost its last leaf
    with pytest.raises(IntegrityError, match="full chunks"):
        await tree.head_and_frontier()
    await Ledger(RedisLog(client), SIGNER).append([Draft("a", "requested", NOW, {})])
    assert await tree.root(7) == root_of(await leaves(client))
    await client.append(keys.tree(0, 1), b"\x00" * 5)  # a piece of a hash
    with pytest.raises(IntegrityError):
        await tree.head_and_frontier()
    await Ledger(RedisLog(client), SIGNER).append([Draft("b", "requested", NOW, {})])
    hashes = await leaves(client)
    assert_chunked(await raw_tree(client), hashes, SMALL)
    assert await tree.root(8) == root_of(hashes)
