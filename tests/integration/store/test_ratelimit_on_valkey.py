"""The per-caller rate limit (GCRA in one script) on a real Valkey.

Properties: a caller gets exactly its burst, then is told how long to wait (one interval);
callers do not share a budget; limits above one call a millisecond still work; two clients
(two replicas) draw on the same budget.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from grantline.store.ratelimit import RedisRateLimits

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


async def test_a_caller_gets_its_burst_then_a_wait_of_one_interval(
    client: aioredis.Redis,
) -> None:
    limits = RedisRateLimits(client, per_minute=6)
    assert [await limits.take("idp", "alice") for _ in range(6)] == [0.0] * 6
    wait = await limits.take("idp", "alice")
    assert 9.0 < wait <= 10.0  # one call each 10 s after the burst
    assert await limits.take("idp", "bob") == 0.0
    assert await limits.take("other-idp", "alice") == 0.0


async def test_refused_calls_do_not_use_up_the_budget(client: aioredis.Redis) -> None:
    limits = RedisRateLimits(client, per_minute=2)
    for _ in range(2):
        await limits.take("idp", "alice")
    waits = [await limits.take("idp", "alice") for _ in range(5)]
    assert all(25.0 < wait <= 30.0 for wait in waits), waits


async def test_a_limit_above_one_call_a_millisecond_still_counts(
    client: aioredis.Redis,
) -> None:
    limits = RedisRateLimits(client, per_minute=100_000_000)
    assert [await limits.take("idp", "alice") for _ in range(50)] == [0.0] * 50


async def test_two_replicas_draw_on_one_budget(redis_url: str, client: aioredis.Redis) -> None:
    other = aioredis.Redis.from_url(redis_url)
    try:
        first, second = RedisRateLimits(client, 4), RedisRateLimits(other, 4)
        answers = [await limits.take("idp", "alice") for limits in (first, second) * 3]
        assert answers[:4] == [0.0] * 4
        assert all(wait > 0 for wait in answers[4:])
    finally:
        await other.aclose()


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="above 0"):
        RedisRateLimits(aioredis.Redis(), per_minute=0)
