"""Checkpoints of the log: the C2SP signed note auditors keep, and the JSON line of exports.

Both state the same thing for the same moment, read atomically: the number of records, the
hash chain's head and the Merkle root over those records. Published notes are kept (by tree
size) so that an auditor can ask for a consistency proof between two of them later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.domain.clock import Clock
from grantline.evidence.canonical import b64url_decode
from grantline.evidence.chain import ChainHead
from grantline.evidence.checkpoint import make_checkpoint
from grantline.evidence.merkle import frontier_root
from grantline.evidence.note import NoteKey, checkpoint_text, sign_note
from grantline.evidence.signer import Signer
from grantline.store import keys
from grantline.store.connection import as_text, unavailable
from grantline.store.tree import RedisTree

T = TypeVar("T")
KEPT = 10_000  # published notes kept for consistency proofs


class Checkpoints:
    def __init__(
        self, client: aioredis.Redis, tree: RedisTree, signer: Signer, origin: str, clock: Clock
    ) -> None:
        self._client = client
        self._tree = tree
        self._signer = signer
        self.origin = origin
        self._clock = clock

    def verifier_key(self) -> NoteKey:
        """The log key as a C2SP verifier key (the current key version)."""
        return NoteKey(self.origin, b64url_decode(self._signer.public_jwk()["x"]))

    async def current(self) -> tuple[ChainHead, bytes]:
        head, frontier = await self._tree.head_and_frontier()
        return head, frontier_root(frontier)

    async def note(self) -> str:
        """A C2SP checkpoint note over the log as it is now, signed with the log key."""
        head, root = await self.current()
        text = checkpoint_text(self.origin, head.seq, root)
        key = self.verifier_key()
        return await self._signed(
            lambda: sign_note(text, self.origin, self._signer, key.public_key)
        )

    async def line(self) -> bytes:
        """The JSON checkpoint line that ends an export."""
        head, root = await self.current()
        now = self._clock.now()
        return await self._signed(
            lambda: make_checkpoint(
                head, origin=self.origin, at=now, signer=self._signer, root=root
            )
        )

    async def publish(self) -> str:
        """Sign a note over the log now and keep it; the note."""
        note = await self.note()
        size = int(note.split("\n", 2)[1])
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.zremrangebyscore(keys.CHECKPOINTS, size, size)
            pipe.zadd(keys.CHECKPOINTS, {note: size})
            pipe.zremrangebyrank(keys.CHECKPOINTS, 0, -KEPT - 1)
            await pipe.execute()
        except RedisError as exc:
            raise unavailable(exc, "the log store") from exc
        return note

    async def latest(self) -> str | None:
        """The newest published note, if any."""
        try:
            newest: list[Any] = await self._client.zrange(keys.CHECKPOINTS, -1, -1)
        except RedisError as exc:
            raise unavailable(exc, "the log store") from exc
        return as_text(newest[0]) if newest else None

    async def _signed(self, sign: Callable[[], T]) -> T:
        # A key held in Vault signs over the network: never on the event loop.
        return await asyncio.to_thread(sign) if self._signer.blocking else sign()
