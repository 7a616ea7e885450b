"""What the reader of OpenBao's audit log keeps in Redis (issuers/vault/audit.py): how far it
has read each log, and which audit HMACs belong to which grant.

Keys: ``{grantline}:usage:audit-offset:<log id>`` (the position, JSON) and
``{grantline}:usage:vault-audit:<name>`` (links from an HMAC, expiring with the grant).
Both sit under ``{grantline}:usage:``, which the broker's Redis user may write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.store import keys
from grantline.store.connection import as_text, unavailable
from grantline.store.grants import RedisGrants

_LINKS = f"{keys.PREFIX}:usage:vault-audit:"
_OFFSETS = f"{keys.PREFIX}:usage:audit-offset:"


class RedisAuditState:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._grants = RedisGrants(client)

    async def position(self, log_id: str) -> str | None:
        return await self._get(_OFFSETS + log_id)

    async def save_position(self, log_id: str, position: str) -> None:
        await self._put(_OFFSETS + log_id, position, None)

    async def links(self, names: Sequence[str]) -> list[str | None]:
        """The values linked to ``names`` (None where there is none), in one round trip."""
        if not names:
            return []
        try:
            raw: list[Any] = await self._client.mget([_LINKS + name for name in names])
        except RedisError as exc:
            raise unavailable(exc, "the usage store") from exc
        return [None if value is None else as_text(value) for value in raw]

    async def link(self, name: str, value: str, ttl_seconds: int) -> None:
        await self._put(_LINKS + name, value, max(1, ttl_seconds))

    async def live_requests(self, limit: int = 10_000) -> list[str]:
        """Requests whose credential is issued and not yet revoked or expired."""
        return [rid for rid, _ in await self._grants.indexed(keys.Index.LIVE, limit=limit)]

    async def fields_of(
        self, request_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, str]]:
        return await self._grants.fields_of(request_ids, names)

    async def _get(self, key: str) -> str | None:
        try:
            raw = await self._client.get(key)
        except RedisError as exc:
            raise unavailable(exc, "the usage store") from exc
        return None if raw is None else as_text(raw)

    async def _put(self, key: str, value: str, ttl_seconds: int | None) -> None:
        try:
            await self._client.set(key, value, ex=ttl_seconds)
        except RedisError as exc:
            raise unavailable(exc, "the usage store") from exc
