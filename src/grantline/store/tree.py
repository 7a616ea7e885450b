"""The Merkle tree over the log, kept in Redis beside it.

Level ``k`` is a row of 32-byte hashes: entry ``i`` is the perfect subtree over leaves
``[i * 2**k, (i + 1) * 2**k)``. Appending a record appends its leaf and every node it
completes, in the log's own atomic append (store/log.py), so the tree always covers exactly
the records of the log. Any root or proof is then a few ``GETRANGE`` reads.

A level is kept in chunks of ``keys.TREE_CHUNK`` (2**20) entries, 32 MiB strings, since a
Redis string holds at most 512 MiB (one string would stop the log at 2**24 records). Entry
``i`` of level ``k`` is at byte ``(i % TREE_CHUNK) * 32`` of chunk ``c = i // TREE_CHUNK``:

* chunk 0: ``{grantline}:tree:<k>``, the name a whole level had before levels were chunked,
  so a store written then, whose levels are all shorter than a chunk, reads and grows as is;
* chunk ``c >= 1``: ``{grantline}:tree:<k>:<c>``.

``keys.tree_entry`` addresses an entry in Python and ``tree_entry`` in the scripts' Lua
(store/log.py); nothing else builds these names. An older store with a level longer than one
chunk does not read as a tree of its log (``tree_behind``) and is built again (``rebuild``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from grantline.domain.errors import DependencyUnavailableError, IntegrityError
from grantline.evidence.chain import ChainHead
from grantline.evidence.merkle import (
    HASH_SIZE,
    PerfectNode,
    consistency_proof,
    frontier_append,
    inclusion_proof,
    leaf_hash,
    range_hash,
)
from grantline.store import keys
from grantline.store.connection import unavailable
from grantline.store.log import FRONTIER_LUA, RedisLog, decode_head, tree_lua

T = TypeVar("T")

# Reads the head and the frontier (the perfect subtrees that make up the tree) together.
_FRONTIER = (
    FRONTIER_LUA
    + """
return frontier(redis.call('GET', KEYS[1]) or '0 GENESIS', ARGV[1])
"""
)


def checked_frontier(
    head: ChainHead, tree_size: int, nodes: Sequence[bytes]
) -> tuple[ChainHead, list[bytes]]:
    """The head and frontier a script read, once the tree is known to cover the log."""
    frontier = [bytes(node) for node in nodes]
    if tree_size < 0:
        raise IntegrityError("the Merkle tree is not laid out in full chunks", code="tree_behind")
    if tree_size != head.seq or any(len(node) != HASH_SIZE for node in frontier):
        raise IntegrityError(
            f"the Merkle tree covers {tree_size} records but the log has {head.seq}",
            code="tree_behind",
        )
    return head, frontier


def encode_nodes(nodes: Sequence[tuple[int, bytes]]) -> bytes:
    """The tree nodes an append completes, as the append script takes them."""
    return b"".join(bytes([level]) + node for level, node in nodes)


def grow(size: int, frontier: list[bytes], lines: Sequence[bytes]) -> bytes:
    """Add ``lines`` as leaves to a tree of ``size`` leaves (``frontier`` changes in place);
    the encoded nodes to store."""
    nodes: list[tuple[int, bytes]] = []
    for offset, line in enumerate(lines):
        nodes += frontier_append(size + offset, frontier, leaf_hash(line))
    return encode_nodes(nodes)


class RedisTree:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._chunk = keys.TREE_CHUNK
        self._frontier = client.register_script(tree_lua(_FRONTIER, self._chunk))

    async def head_and_frontier(self) -> tuple[ChainHead, list[bytes]]:
        """The log's head and its tree's frontier, read atomically, largest subtree first.

        Raises IntegrityError when the tree does not cover the log (see :meth:`rebuild`).
        """
        reply = await self._call(self._frontier(keys=[keys.HEAD], args=[keys.PREFIX]))
        return checked_frontier(decode_head(reply[0]), int(reply[1]), reply[2:])

    async def size(self) -> int:
        """The number of records the tree covers, which is the log's (or IntegrityError)."""
        head, _ = await self.head_and_frontier()
        return head.seq

    async def root(self, size: int) -> bytes:
        """The root of the tree of the first ``size`` records."""
        return await self._computed(lambda perfect: range_hash(0, size, perfect))

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        return (await self.inclusions([index], size))[0]

    async def inclusions(self, indices: Sequence[int], size: int) -> list[list[bytes]]:
        """The proofs of many leaves, their nodes fetched in one round trip."""
        return await self._computed(
            lambda perfect: [inclusion_proof(index, size, perfect) for index in indices]
        )

    async def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return await self._computed(lambda perfect: consistency_proof(old_size, new_size, perfect))

    async def leaf(self, index: int) -> bytes:
        return (await self._nodes([(0, index)]))[(0, index)]

    async def _computed(self, compute: Callable[[PerfectNode], T]) -> T:
        # The nodes a computation needs depend only on the sizes, not on the hashes: a first
        # pass with stand-ins lists them, one pipelined read fetches them, a second computes.
        needed: list[tuple[int, int]] = []

        def record(level: int, index: int) -> bytes:
            needed.append((level, index))
            return bytes(HASH_SIZE)

        compute(record)
        nodes = await self._nodes(needed)
        return compute(lambda level, index: nodes[(level, index)])

    async def _nodes(self, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        unique = list(dict.fromkeys(wanted))
        pipe = self._client.pipeline(transaction=False)
        for level, index in unique:
            key, start = keys.tree_entry(level, index, self._chunk)
            pipe.getrange(key, start, start + HASH_SIZE - 1)
        replies = await self._call(pipe.execute())
        nodes = {}
        for at, raw in zip(unique, replies, strict=True):
            if len(raw) != HASH_SIZE:
                raise IntegrityError(f"the Merkle tree has no node {at}", code="tree_behind")
            nodes[at] = bytes(raw)
        return nodes

    async def rebuild(self, log: RedisLog) -> bool:
        """Build the tree of a log written before the tree existed (or whose tree was lost).

        Returns True when it rebuilt. The write is refused (and retried at the next start)
        if the log moved meanwhile. Raises DependencyUnavailableError.
        """
        try:
            await self.head_and_frontier()
        except IntegrityError:
            pass
        else:
            return False
        head = await log.head()
        levels = await _levels_of(log, head)
        chunk_bytes = self._chunk * HASH_SIZE
        try:
            # Every chunk the tree has, however far a stale one went: only an append writes
            # one (and moves the head, which the write below watches) or a rebuild.
            scan = self._client.scan_iter(match=keys.TREE_MATCH, count=1000)
            stale = [key async for key in scan]
            async with self._client.pipeline(transaction=True) as pipe:
                await pipe.watch(keys.HEAD)
                if decode_head(await pipe.get(keys.HEAD)) != head:
                    raise DependencyUnavailableError("the log moved while its tree was rebuilt")
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(*(keys.tree(level) for level in range(64)), *stale)
                for level, data in levels.items():
                    for start in range(0, len(data), chunk_bytes):
                        key, _ = keys.tree_entry(level, start // HASH_SIZE, self._chunk)
                        pipe.set(key, bytes(data[start : start + chunk_bytes]))
                await pipe.execute()
        except WatchError as exc:
            raise DependencyUnavailableError("the log moved while its tree was rebuilt") from exc
        except RedisError as exc:
            raise unavailable(exc, "the log store") from exc
        return True

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except RedisError as exc:
            raise unavailable(exc, "the log store") from exc


async def _levels_of(log: RedisLog, head: ChainHead) -> dict[int, bytearray]:
    """Every perfect node of the tree of the log up to ``head``, by level."""
    frontier: list[bytes] = []
    levels: dict[int, bytearray] = {}
    size, after = 0, 0
    while size < head.seq:
        page = await log.read(after, 10_000)
        if not page:
            break
        for seq, line in page[: head.seq - size]:
            for level, node in frontier_append(size, frontier, leaf_hash(line)):
                levels.setdefault(level, bytearray()).extend(node)
            size, after = size + 1, seq
    if size != head.seq:
        raise IntegrityError(
            f"the log's stream holds {size} of its {head.seq} records", code="tree_behind"
        )
    return levels
