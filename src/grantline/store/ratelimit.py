"""Rate limits per caller, kept in Redis so that they hold across every replica.

GCRA (the generic cell rate algorithm) in one script call: a caller may make ``per_minute``
calls a minute, at most ``per_minute`` of them at once, and one more each ``60/per_minute``
seconds after that. The script reads Redis' clock, so replicas whose clocks differ agree.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.store import keys
from grantline.store.connection import unavailable

# KEYS[1]: the caller's theoretical arrival time (µs: a limit may exceed 60,000 a minute). ARGV:
# the interval between calls and the tolerance that allows a burst (µs). Returns 0 when
# allowed, else the µs to wait. Lua numbers are doubles: exact for µs since 1970 (< 2^53).
_TAKE = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - tolerance > now then return tat - tolerance - now end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
"""


def rate_key(issuer: str, subject: str) -> str:
    # Per issuer and subject (issuers name subjects each in their own namespace); hashed, as
    # both are text of any length from outside.
    digest = hashlib.sha256(f"{issuer}\x00{subject}".encode()).hexdigest()[:32]
    return f"{keys.PREFIX}:rate:{digest}"


class RedisRateLimits:
    """Calls per minute per caller (issuer and subject)."""

    def __init__(self, client: aioredis.Redis, per_minute: int) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be above 0")
        self.per_minute = per_minute
        self._interval_us = max(1, 60_000_000 // per_minute)
        self._tolerance_us = self._interval_us * (per_minute - 1)
        self._take = client.register_script(_TAKE)

    async def take(self, issuer: str, subject: str) -> float:
        """Counts a call of ``subject`` (of ``issuer``): 0 if allowed, else the seconds to wait.

        Raises:
            DependencyUnavailableError: Redis did not answer.
        """
        args = [self._interval_us, self._tolerance_us]
        try:
            wait_us = await self._take(keys=[rate_key(issuer, subject)], args=args)
        except RedisError as exc:
            raise unavailable(exc) from exc
        return int(wait_us) / 1_000_000
