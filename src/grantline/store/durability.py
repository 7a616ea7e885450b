"""Whether an acknowledged append is on disk: checked at start-up, after each append, and for
readiness.

Three modes (``GRANTLINE_STORE_DURABILITY``):

- ``fsync`` (default): the store must report ``appendonly yes`` and ``appendfsync always``
  at start-up. Valkey then fsyncs every write before it replies, so each acknowledged
  append is on the local disk at no extra cost per append.
- ``waitaof``: after every append, in the same round trip, ``WAITAOF 1 <replicas> <timeout>``
  and its counts checked: the append counts only once the local AOF and the required
  number of replicas have fsynced it. ``WAIT`` alone would not do: it confirms that a
  replica received a write, not that anyone wrote it to disk.
- ``none``: nothing is confirmed; for throwaway stores only, and said so at start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError

from grantline.domain.errors import ConfigError, DependencyUnavailableError
from grantline.store.connection import as_text, unavailable

log = logging.getLogger(__name__)


class Durability(StrEnum):
    FSYNC = "fsync"
    WAITAOF = "waitaof"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class DurabilitySettings:
    mode: Durability = Durability.FSYNC
    # Replicas that must have fsynced an append too (waitaof only).
    waitaof_replicas: int = 0
    # How long one append waits for the fsyncs; kept under the socket timeout, or the client
    # would give up on the connection before the store answers.
    waitaof_timeout_ms: int = 500


def not_durable(reason: str) -> DependencyUnavailableError:
    """The error of an append the store did not confirm on disk: the caller gets 503."""
    return DependencyUnavailableError(
        f"the store did not confirm the write is durable: {reason}", code="store_not_durable"
    )


async def check_durability(client: aioredis.Redis, settings: DurabilitySettings) -> None:
    """Refuse to start on a store that cannot give the configured durability.

    Raises:
        ConfigError: the store's persistence settings fall short of the mode, or cannot be read
            where the mode relies on them.
        DependencyUnavailableError: the store cannot be reached.
    """
    if settings.mode is Durability.NONE:
        log.warning("GRANTLINE_STORE_DURABILITY=none: acknowledged records may be lost on a crash")
        return
    try:
        aof = await _config_value(client, "appendonly")
        fsync = await _config_value(client, "appendfsync")
    except RedisError as exc:
        raise unavailable(exc) from exc
    if settings.mode is Durability.FSYNC and (aof, fsync) != ("yes", "always"):
        seen = (
            "cannot be read (CONFIG GET refused)"
            if aof is None
            else (f"is appendonly={aof} appendfsync={fsync}")
        )
        raise ConfigError(
            f"GRANTLINE_STORE_DURABILITY=fsync needs appendonly yes and appendfsync always; the "
            f"store's persistence {seen}. Set them, or use GRANTLINE_STORE_DURABILITY=waitaof"
        )
    if settings.mode is Durability.WAITAOF and aof == "no":
        # WAITAOF with numlocal 1 fails on every call when the store keeps no AOF.
        raise ConfigError("GRANTLINE_STORE_DURABILITY=waitaof needs appendonly yes on the store")


async def _config_value(client: aioredis.Redis, name: str) -> str | None:
    try:
        reply = await client.config_get(name)
    except ResponseError:
        return None
    value = reply.get(name)
    return None if value is None else str(value)


class ConfirmedAppend:
    """Runs the log's append script and, in ``waitaof`` mode, WAITAOF in the same round trip.

    The pipeline sends EVALSHA then WAITAOF on one connection without MULTI: WAITAOF waits
    for the fsync of this connection's last write, which is the append just before it (or,
    for a retried batch, the script's refresh of its batch key, written after the append).
    With replicas required, a ``WAIT`` goes between them, its count unused: pipelined
    straight behind a write, WAITAOF's request for acknowledgements reaches a replica with
    the write itself, the replica answers before its fsync, and the next answer comes with
    its once-a-second heartbeat (measured: ~1 s per append instead of ~4 ms).
    """

    def __init__(
        self, client: aioredis.Redis, script: AsyncScript, settings: DurabilitySettings
    ) -> None:
        self._client = client
        self._script = script
        self._settings = settings

    @property
    def waits(self) -> bool:
        return self._settings.mode is Durability.WAITAOF

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply, once the write it made (if any) is confirmed durable.

        Raises:
            RedisError: the store failed (the caller maps it).
            DependencyUnavailableError: ``store_not_durable``, WAITAOF's counts fell short.
        """
        if not self.waits:
            return await self._script(keys=keys, args=args)
        try:
            reply, counts = await self._pipelined(keys, args)
        except NoScriptError:
            # A restarted or flushed store lost the script: load it once and go again. The
            # append's batch key makes the second try safe.
            self._script.sha = await self._client.script_load(self._script.script)
            reply, counts = await self._pipelined(keys, args)
        self._check(reply, counts)
        return reply

    async def _pipelined(self, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, Any]:
        # EVALSHA by hand: a Script given to a pipeline costs a SCRIPT EXISTS round trip
        # on every execute, which is what this pipeline exists to avoid.
        settings = self._settings
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        if settings.waitaof_replicas:
            pipe.wait(settings.waitaof_replicas, settings.waitaof_timeout_ms)
        pipe.waitaof(1, settings.waitaof_replicas, settings.waitaof_timeout_ms)
        replies = await pipe.execute()
        return replies[0], replies[-1]

    def _check(self, reply: Any, counts: Any) -> None:
        # A refused compare-and-set (status 0 or 3) wrote nothing: there is nothing to confirm.
        if int(reply[0]) not in (1, 2):
            return
        local, replicas = int(counts[0]), int(counts[1])
        wanted = self._settings.waitaof_replicas
        if local < 1 or replicas < wanted:
            raise not_durable(
                f"WAITAOF confirmed {local} local and {replicas} replica fsyncs, "
                f"{wanted} replicas required"
            )


# INFO persistence fields that say the store cannot currently persist, with the value that
# means it can.
_HEALTHY = {
    "aof_last_write_status": "ok",
    "aof_last_bgrewrite_status": "ok",
    "rdb_last_bgsave_status": "ok",
}


@dataclass(frozen=True, slots=True)
class PersistenceStatus:
    ok: bool
    reason: str = ""


class PersistenceProbe:
    """Readiness: can the store take and persist writes right now? ``INFO persistence memory``
    (one round trip), cached a few seconds."""

    def __init__(
        self, client: aioredis.Redis, settings: DurabilitySettings, ttl_seconds: float = 2.0
    ) -> None:
        self._client = client
        self._settings = settings
        self._ttl = ttl_seconds
        self._cached: tuple[float, PersistenceStatus] | None = None

    async def status(self) -> PersistenceStatus:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self._ttl:
            return self._cached[1]
        status = await self._probe()
        self._cached = (now, status)
        return status

    async def _probe(self) -> PersistenceStatus:
        try:
            info = await self._client.info("persistence", "memory")
        except ResponseError as exc:
            # An ACL without INFO: the start-up check stands, readiness cannot add to it.
            log.debug("INFO persistence refused: %s", exc)
            return PersistenceStatus(ok=True)
        except RedisError as exc:
            return PersistenceStatus(False, f"store unreachable: {type(exc).__name__}")
        return judge(info, self._settings)


def judge(info: Mapping[str, Any], settings: DurabilitySettings) -> PersistenceStatus:
    """Whether ``INFO persistence`` shows a store that persists as ``settings`` need."""
    for name, healthy in _HEALTHY.items():
        value = info.get(name)
        if value is not None and as_text(str(value)) != healthy:
            return PersistenceStatus(False, f"{name}:{value}")
    if settings.mode is not Durability.NONE and str(info.get("aof_enabled", "1")) != "1":
        return PersistenceStatus(False, "aof_enabled:0")
    # With noeviction (start-up insists on it) a full store refuses every write.
    limit, used = int(info.get("maxmemory", 0)), int(info.get("used_memory", 0))
    if limit and used >= limit:
        return PersistenceStatus(False, f"maxmemory reached: used_memory {used} >= {limit}")
    return PersistenceStatus(ok=True)
