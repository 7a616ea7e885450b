"""A lease-style lock in Redis, so that one replica at a time runs a periodic job."""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.store import keys
from grantline.store.connection import as_text, unavailable


class StoreLock:
    """Held by whoever set it last until it lapses; never released early, never waited on."""

    def __init__(self, client: aioredis.Redis, name: str) -> None:
        self._client = client
        self._key = keys.lock(name)
        self._owner = secrets.token_hex(8)

    async def acquire(self, seconds: float) -> bool:
        """True when this process holds the lock for the next ``seconds``."""
        try:
            if await self._client.set(self._key, self._owner, nx=True, px=int(seconds * 1000)):
                return True
            held_by = await self._client.get(self._key)
        except RedisError as exc:
            raise unavailable(exc) from exc
        return held_by is not None and as_text(held_by) == self._owner
