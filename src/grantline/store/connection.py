"""Redis connections with explicit timeouts and bounded retries, and the start-up safety checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from grantline.domain.errors import ConfigError, DependencyUnavailableError

log = logging.getLogger(__name__)

# Evidence must never be evicted: any policy other than noeviction may drop log entries.
_SAFE_EVICTION = "noeviction"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str
    socket_timeout: float = 1.0
    connect_timeout: float = 1.0
    retries: int = 2


def connect(settings: StoreSettings) -> aioredis.Redis:
    """An async client that fails within the timeout budget instead of hanging.

    Retries cover connection errors only. They are safe for every call we make: reads are
    idempotent and appends carry an idempotency key (see ``log.py``).
    """
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), settings.retries)
    return aioredis.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        max_connections=64,
    )


async def check_persistence(client: aioredis.Redis) -> None:
    """Refuse a store that may evict evidence. Whether writes reach the disk is checked by
    ``durability.check_durability`` against the configured mode.

    Raises:
        ConfigError: the store evicts keys under memory pressure.
        DependencyUnavailableError: the store cannot be reached.
    """
    try:
        policy = await _config_value(client, "maxmemory-policy")
    except RedisError as exc:
        raise DependencyUnavailableError(
            f"store unreachable: {exc}", code="store_unavailable"
        ) from exc
    if policy is not None and policy != _SAFE_EVICTION:
        raise ConfigError(
            f"the store's maxmemory-policy is {policy!r}; evidence needs 'noeviction' "
            "(CONFIG SET maxmemory-policy noeviction)"
        )


async def _config_value(client: aioredis.Redis, name: str) -> str | None:
    # Managed Redis services often disable CONFIG; then the operator owns these settings.
    try:
        reply = await client.config_get(name)
    except ResponseError:
        log.warning("CONFIG GET %s is not permitted; cannot check it", name)
        return None
    value = reply.get(name)
    return None if value is None else str(value)


def unavailable(exc: RedisError, what: str = "the store") -> DependencyUnavailableError:
    """The error every store call raises when Redis fails: its kind, never its arguments."""
    return DependencyUnavailableError(
        f"{what} is unavailable: {type(exc).__name__}", code="store_unavailable"
    )


def as_text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
