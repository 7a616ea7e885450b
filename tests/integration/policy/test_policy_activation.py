"""Policy activations on a real Valkey: each load is recorded with its bundle in one append,
names what decided before, and is never lost to a store that was down for a while."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from grantline.broker.activation import POLICY_ACTIVATED, PolicyWatch
from grantline.domain.errors import ConfigError, DependencyUnavailableError
from grantline.evidence.signer import LocalEd25519Signer
from grantline.policy import EmbeddedRegoEngine
from grantline.store.connection import StoreSettings, connect
from grantline.store.grants import RedisGrants
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import RedisLog
from grantline.store.policy_archive import PolicyArchiveReader

pytestmark = pytest.mark.integration

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class Flaky:
    """A ledger whose appends fail while ``down``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.down = False

    async def append(self, drafts: Sequence[Draft]) -> list[bytes]:
        if self.down:
            raise DependencyUnavailableError("the log store is unavailable")
        return await self.ledger.append(drafts)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis_client = connect(StoreSettings(redis_url))
    yield redis_client
    await redis_client.aclose()


def watch(engine: EmbeddedRegoEngine, client: aioredis.Redis) -> tuple[PolicyWatch, Flaky]:
    ledger = Flaky(Ledger(RedisLog(client), SIGNER))
    return PolicyWatch(engine, ledger, RedisGrants(client), FixedClock()), ledger


async def activations(client: aioredis.Redis) -> list[dict[str, Any]]:
    records = [json.loads(line) for _, line in await RedisLog(client).read(0, 1000)]
    return [r for r in records if r["event"] == POLICY_ACTIVATED]


def set_cap(directory: Path, cap: int) -> None:
    path = directory / "data.json"
    data = json.loads(path.read_text())
    data["grantline"]["roles"]["db-read"]["max_ttl_seconds"] = cap
    path.write_text(json.dumps(data))


async def test_start_and_reload_are_recorded_with_their_bundles(
    client: aioredis.Redis, policy_copy: Path
) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    first, first_files = engine.digest, dict(engine.bundle.files)
    policies, _ = watch(engine, client)

    await policies.start()
    set_cap(policy_copy, 60)
    assert await policies.check() is True

    started, reloaded = (record["data"] for record in await activations(client))
    assert (started["policy_digest"], started["previous"]) == (first, None)
    assert started["trigger"]["kind"] == "startup"
    assert (reloaded["policy_digest"], reloaded["previous"]) == (engine.digest, first)
    assert reloaded["trigger"]["kind"] == "reload"
    kept = PolicyArchiveReader(client)
    assert await kept.bundle(first) == first_files
    assert await kept.bundle(engine.digest) == engine.bundle.files


async def test_a_restarted_broker_names_the_newest_activation_as_previous(
    client: aioredis.Redis, policy_copy: Path
) -> None:
    earlier, _ = watch(EmbeddedRegoEngine(policy_copy), client)
    await earlier.start()
    set_cap(policy_copy, 60)
    await earlier.check()
    latest = EmbeddedRegoEngine(policy_copy)

    restarted, _ = watch(latest, client)
    await restarted.start()

    assert (await activations(client))[-1]["data"]["previous"] == latest.digest


async def test_an_activation_the_store_could_not_take_is_written_at_the_next_check(
    client: aioredis.Redis, policy_copy: Path
) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    policies, ledger = watch(engine, client)
    await policies.start()
    set_cap(policy_copy, 60)
    ledger.down = True

    with pytest.raises(DependencyUnavailableError):
        await policies.check()
    assert engine.digest != (await activations(client))[-1]["data"]["policy_digest"]

    ledger.down = False
    assert await policies.check() is False
    assert (await activations(client))[-1]["data"]["policy_digest"] == engine.digest


async def test_a_refused_change_activates_nothing(
    client: aioredis.Redis, policy_copy: Path
) -> None:
    policies, _ = watch(EmbeddedRegoEngine(policy_copy), client)
    await policies.start()
    (policy_copy / "grantline.rego").write_text("package grantline\n\nallow if {\n")

    with pytest.raises(ConfigError):
        await policies.check()

    assert len(await activations(client)) == 1
