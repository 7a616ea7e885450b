"""Durability confirmed, not assumed: start-up refusals, WAITAOF counts checked per append, and
the persistence probe readiness relies on, against a real Valkey."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from grantline.domain.errors import ConfigError, DependencyUnavailableError
from grantline.evidence.signer import LocalEd25519Signer
from grantline.store.connection import StoreSettings, check_persistence, connect
from grantline.store.durability import (
    Durability,
    DurabilitySettings,
    PersistenceProbe,
    check_durability,
    judge,
)
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import RedisLog
from grantline.store.valkey import EmbeddedValkey

pytestmark = pytest.mark.integration

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
FSYNC = DurabilitySettings(Durability.FSYNC)
WAITAOF = DurabilitySettings(Durability.WAITAOF)


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    """A Valkey of this test's own: its settings are changed by the test."""
    server = EmbeddedValkey(tmp_path / "store")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def client(own_store: EmbeddedValkey) -> AsyncIterator[aioredis.Redis]:
    redis_client = connect(StoreSettings(own_store.url))
    yield redis_client
    await redis_client.aclose()


def draft(request_id: str) -> Draft:
    return Draft(request_id, "requested", NOW, {"n": 1})


async def test_the_embedded_store_satisfies_fsync_durability(client: aioredis.Redis) -> None:
    await check_persistence(client)
    await check_durability(client, FSYNC)


@pytest.mark.parametrize(
    ("name", "value"), [("appendfsync", "everysec"), ("appendfsync", "no"), ("appendonly", "no")]
)
async def test_fsync_durability_refuses_a_store_that_does_not_fsync_every_write(
    client: aioredis.Redis, name: str, value: str
) -> None:
    await client.config_set(name, value)
    with pytest.raises(ConfigError, match="appendfsync always"):
        await check_durability(client, FSYNC)


async def test_waitaof_durability_accepts_everysec_but_refuses_a_store_without_aof(
    client: aioredis.Redis,
) -> None:
    await client.config_set("appendfsync", "everysec")
    await check_durability(client, WAITAOF)
    await client.config_set("appendonly", "no")
    with pytest.raises(ConfigError, match="appendonly yes"):
        await check_durability(client, WAITAOF)


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "allkeys-random"])
async def test_start_up_refuses_an_evicting_maxmemory_policy(
    client: aioredis.Redis, policy: str
) -> None:
    await client.config_set("maxmemory-policy", policy)
    with pytest.raises(ConfigError, match="noeviction"):
        await check_persistence(client)


async def test_waitaof_confirms_each_append_in_the_same_round_trip(
    client: aioredis.Redis,
) -> None:
    await client.config_set("appendfsync", "everysec")
    await client.config_resetstat()
    ledger = Ledger(RedisLog(client, WAITAOF), SIGNER)
    for n in range(5):
        await ledger.append([draft(f"r{n}")])
    stats = await client.info("commandstats")
    # One WAITAOF per append, pipelined behind EVALSHA (the first append also loads the
    # script, and goes again): no SCRIPT EXISTS round trips.
    assert stats["cmdstat_waitaof"]["calls"] in (5, 6)
    assert "cmdstat_script|exists" not in stats


async def test_waitaof_short_of_replicas_is_not_durable_and_fails_the_append(
    client: aioredis.Redis,
) -> None:
    """Row 5: one replica required, none attached: the append is refused as not durable."""
    one_replica = DurabilitySettings(Durability.WAITAOF, waitaof_replicas=1, waitaof_timeout_ms=50)
    with pytest.raises(DependencyUnavailableError) as raised:
        await Ledger(RedisLog(client, one_replica), SIGNER).append([draft("r")])
    assert raised.value.code == "store_not_durable"
    assert "1 replicas required" in raised.value.message


async def test_waitaof_reloads_a_script_the_store_lost(client: aioredis.Redis) -> None:
    ledger = Ledger(RedisLog(client, WAITAOF), SIGNER)
    await ledger.append([draft("a")])
    await client.script_flush()
    await ledger.append([draft("b")])
    assert await client.xlen("{grantline}:log") == 2


async def test_the_persistence_probe_is_ok_on_a_healthy_store_and_cached(
    client: aioredis.Redis,
) -> None:
    probe = PersistenceProbe(client, FSYNC, ttl_seconds=60)
    assert (await probe.status()).ok
    await client.config_set("appendonly", "no")
    assert (await probe.status()).ok  # cached: one INFO per few seconds, not per probe
    fresh = await PersistenceProbe(client, FSYNC).status()
    assert not fresh.ok
    assert fresh.reason == "aof_enabled:0"


def test_a_failed_aof_write_or_rewrite_or_snapshot_makes_the_store_not_persisting() -> None:
    healthy = {"aof_enabled": 1, "aof_last_write_status": "ok", "rdb_last_bgsave_status": "ok"}
    assert judge(healthy, FSYNC).ok
    for name in ("aof_last_write_status", "aof_last_bgrewrite_status", "rdb_last_bgsave_status"):
        status = judge({**healthy, name: "err"}, FSYNC)
        assert not status.ok
        assert status.reason == f"{name}:err"
    assert judge({**healthy, "aof_enabled": 0}, DurabilitySettings(Durability.NONE)).ok
    full = judge({**healthy, "maxmemory": 1000, "used_memory": 1000}, FSYNC)
    assert not full.ok
    assert full.reason.startswith("maxmemory reached")
    assert judge({**healthy, "maxmemory": 0, "used_memory": 1000}, FSYNC).ok


async def test_an_unreachable_store_is_not_persisting() -> None:
    client = connect(StoreSettings("redis://127.0.0.1:1/0", socket_timeout=0.2, retries=0))
    try:
        started = time.monotonic()
        status = await PersistenceProbe(client, FSYNC).status()
        assert not status.ok
        assert status.reason.startswith("store unreachable")
        assert time.monotonic() - started < 5
    finally:
        await client.aclose()
