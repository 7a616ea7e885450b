"""Lease-style locks in Redis: one replica at a time runs a periodic job, or changes a request."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.domain.errors import ConflictError
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


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RequestLocks:
    """One change at a time to one request, across replicas: approvals, rejection, expiry and
    review read the request, decide, then write, and two of them must not interleave."""

    def __init__(
        self, client: aioredis.Redis, *, lease_seconds: float = 60.0, wait_seconds: float = 10.0
    ) -> None:
        self._client = client
        self._lease_ms = int(lease_seconds * 1000)
        self._wait = wait_seconds
        self._release = client.register_script(_RELEASE)

    @contextlib.asynccontextmanager
    async def hold(self, request_id: str) -> AsyncIterator[None]:
        """Raises ConflictError when the request stays locked for longer than the wait."""
        key = keys.lock(f"request:{request_id}")
        owner = secrets.token_hex(8)
        deadline = asyncio.get_running_loop().time() + self._wait
        try:
            while not await self._client.set(key, owner, nx=True, px=self._lease_ms):
                if asyncio.get_running_loop().time() >= deadline:
                    raise ConflictError(
                        f"request {request_id} is being changed by another call; try again"
                    )
                await asyncio.sleep(0.02)
        except RedisError as exc:
            raise unavailable(exc) from exc
        try:
            yield
        finally:
            # Should the release fail, the lease lapses on its own.
            with contextlib.suppress(RedisError):
                await self._release(keys=[key], args=[owner])
