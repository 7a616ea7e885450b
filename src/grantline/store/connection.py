"""Redis connections with explicit timeouts and bounded retries, and the start-up safety checks.

A store is one server (``GRANTLINE_REDIS_URL``) or the primary that Redis Sentinel names
(``GRANTLINE_REDIS_SENTINELS``); ``connect`` builds the client of either.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.connection import parse_url as parse_redis_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from grantline.domain.errors import ConfigError, DependencyUnavailableError

log = logging.getLogger(__name__)

# Evidence must never be evicted: any policy other than noeviction may drop log entries.
_SAFE_EVICTION = "noeviction"
# How often a Sentinel-managed client asks which server is the primary, besides on every
# new connection and on errors (see _PrimaryPool).
_PRIMARY_CHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str
    socket_timeout: float = 1.0
    connect_timeout: float = 1.0
    retries: int = 2
    # With sentinels, the primary's address is asked of them and ``url`` gives only the data
    # connection's user, password, database and TLS (its host is the service name).
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = "grantline"
    sentinel_password: str | None = None


def connect(settings: StoreSettings) -> aioredis.Redis:
    """An async client that fails within the timeout budget instead of hanging.

    Retries cover connection errors only. They are safe for every call we make: reads are
    idempotent and appends carry an idempotency key (see ``log.py``). Through Sentinel a
    retry also finds the new primary after a failover (see ``_through_sentinels``).

    Raises:
        ConfigError: a Sentinel store with a ``unix://`` URL (sockets have no failover).
    """
    options = _client_options(settings)
    if settings.sentinels:
        client = _through_sentinels(settings, options)
    else:
        client = aioredis.Redis.from_url(settings.url, **options)
    pool = client.connection_pool
    pool.connection_class = _closed_transport_is_a_connection_error(pool.connection_class)
    return client


class _ClosedTransportGuard(AbstractConnection):
    """Under uvloop (uvicorn's loop), writing to a connection whose transport the peer reset
    (while it sat idle in the pool, or while it was being set up) raises a bare RuntimeError
    before anything is sent. redis-py neither retries that nor makes it a RedisError, so it
    surfaced as a 500; as a connection error it is retried on a new connection, or ends as
    503 ``store_unavailable`` like any other."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:
            raise RedisConnectionError("the connection was closed by the peer") from exc


def _closed_transport_is_a_connection_error(kind: type[Any]) -> type[Any]:
    # A subclass of the class the URL or Sentinel chose (TCP, TLS, Unix socket, managed).
    if issubclass(kind, _ClosedTransportGuard):
        return kind
    return type(f"Guarded{kind.__name__}", (_ClosedTransportGuard, kind), {})


def _client_options(settings: StoreSettings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), settings.retries),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 30,
        "max_connections": 64,
    }


def _through_sentinels(settings: StoreSettings, options: dict[str, Any]) -> aioredis.Redis:
    """The client of the primary the sentinels name, following it through failovers.

    redis-py's Sentinel pool asks the sentinels for the primary on every new connection. A
    connection to a server that has become a replica gets READONLY on its first write; the
    pool turns that into a connection error, so the retry reconnects to the new primary.
    ``_PrimaryPool`` adds a check once a second, so a broker also leaves a demoted primary
    that it has not written to yet. Until the new primary has a replica that confirms each
    append (``waitaof``, required with sentinels), appends fail as not durable: 503.
    """
    data = _data_options(settings.url)
    tls = data.pop("ssl", False)
    # The sentinels get no retries of their own: discovery tries the next sentinel instead,
    # and redis-py's default (three, backing off from 1 s) would blow the timeout budget.
    sentinel_options = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "password": settings.sentinel_password,
        "ssl": tls,
    }
    # redis-py's Sentinel module has no annotations: the calls below are untyped.
    sentinel = Sentinel(list(settings.sentinels), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    client: aioredis.Redis = sentinel.master_for(
        settings.service,
        redis_class=_SentinelClient,
        connection_pool_class=_PrimaryPool,
        ssl=tls,
        **options,
        **data,
    )
    return client


def _data_options(url: str) -> dict[str, Any]:
    """The user, password, database, TLS and query options of ``url``, not its address."""
    parsed: dict[str, Any] = dict(parse_redis_url(url))
    kind = parsed.pop("connection_class", None)
    if kind is UnixDomainSocketConnection:
        raise ConfigError("a Sentinel-managed store needs a redis:// or rediss:// URL")
    for address in ("host", "port", "path"):
        parsed.pop(address, None)
    if kind is SSLConnection:
        parsed["ssl"] = True
    return parsed


class _PrimaryPool(SentinelConnectionPool):
    """The Sentinel pool, re-asking for the primary at most once a second, and closing a
    connection returned to it that points elsewhere than the primary last named.

    Without this a connection to a demoted primary that still answers (its sentinels have
    not told it yet, or cannot reach it) stays in use until a write fails there.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._next_check = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + _PRIMARY_CHECK_SECONDS
            try:
                # Closes idle connections when the primary changed.
                await self.get_master_address()  # type: ignore[no-untyped-call]
            except RedisError as exc:
                # Connecting asks again, and fails the call if the sentinels cannot answer.
                log.debug("sentinels did not name a primary: %s", type(exc).__name__)
        connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        primary = self.master_address
        stale = getattr(connection, "host", None), getattr(connection, "port", None)
        if primary is not None and stale != tuple(primary):
            await connection.disconnect()
        await super().release(connection)


class _SentinelClient(aioredis.Redis):
    """The primary's client; closing it also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        pool = self.connection_pool
        await super().aclose(close_connection_pool)
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


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
