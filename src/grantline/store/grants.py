"""Read side of request state in Redis: request summaries, active grants, token ids.

The writes happen in the log's append script, atomically with the record that causes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.domain.models import ActiveGrant
from grantline.store import keys
from grantline.store.connection import as_text, unavailable
from grantline.store.log import decode_active, to_millis


class RedisGrants:
    """Request state and active grants, read from Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def active_for(self, subject: str, now: datetime) -> list[ActiveGrant]:
        """The longest-lasting unexpired, unrevoked grant per (role, target) of ``subject``.

        Two round trips: the pairs held, then the longest grant of each.
        """
        index = keys.active(subject)
        try:
            held: list[Any] = await self._client.zrangebyscore(index, to_millis(now) + 1, "+inf")
            if not held:
                return []
            pipe = self._client.pipeline(transaction=False)
            for pair in held:
                pipe.zrevrange(f"{index}:{as_text(pair)}", 0, 0)
            tops = await pipe.execute()
        except RedisError as exc:
            raise unavailable(exc, "the state store") from exc
        return [decode_active(top[0]) for top in tops if top]

    async def request(self, request_id: str) -> dict[str, str] | None:
        """The stored summary of a request, or None when there is no such request."""
        try:
            raw: dict[Any, Any] = await self._client.hgetall(keys.request(request_id))
        except RedisError as exc:
            raise unavailable(exc, "the state store") from exc
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def fields_of(
        self, request_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, str]]:
        """Some fields of many requests' state, in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for request_id in request_ids:
            pipe.hmget(keys.request(request_id), list(names))
        try:
            replies = await pipe.execute()
        except RedisError as exc:
            raise unavailable(exc, "the state store") from exc
        return {
            request_id: {n: as_text(v) for n, v in zip(names, values, strict=True) if v is not None}
            for request_id, values in zip(request_ids, replies, strict=True)
        }

    async def request_for_token(self, token_id: str) -> str | None:
        try:
            raw = await self._client.get(keys.jti(token_id))
        except RedisError as exc:
            raise unavailable(exc, "the state store") from exc
        return None if raw is None else as_text(raw)

    async def indexed(
        self, name: keys.Index, *, up_to: int | float = float("inf"), limit: int = 1000
    ) -> list[tuple[str, int]]:
        """Request ids in a work list with a score up to ``up_to``, lowest first, with scores."""
        try:
            scored: list[Any] = await self._client.zrangebyscore(
                keys.index(name), "-inf", up_to, start=0, num=limit, withscores=True
            )
        except RedisError as exc:
            raise unavailable(exc, "the state store") from exc
        return [(as_text(member), int(score)) for member, score in scored]

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except RedisError:
            return False
