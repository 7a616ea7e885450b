"""Observed uses of issued credentials, aggregated per grant and time window until recorded.

Resource servers report each use (and introspection counts as one), so a busy service would
write a record per call. Instead each observation adds, in one script per report, to the
aggregate of its grant's current window: count, first and last use, uses per operation and
per outcome, the resources (the first 32 distinct) and the reporters (the first 8). A window
whose end has passed is recorded as one ``used`` record by the broker (broker/usage.py); the
append that records it deletes the aggregate in the same atomic step (store/log.py), so a
window is recorded once.

Keys: ``{grantline}:usage:<request id>|<window>`` (a hash; window = start in seconds since
the epoch divided by the window length) and ``{grantline}:usage:pending`` (a sorted set of
those ``<request id>|<window>`` members, scored by the window's end in milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.store import keys
from grantline.store.connection import as_text, unavailable

MAX_RESOURCES = 32
MAX_OPERATIONS = 32
MAX_REPORTERS = 8
MAX_REASONS = 16
# A report's batch id is remembered this long: a client retrying a lost reply counts once.
_BATCH_SECONDS = 86_400

# ARGV: prefix, batch id ('' for none), window length in ms, then 8 per observation:
# request id, at (ms), operation, resource ('' for none), outcome, reporter, after_end (0/1),
# reason ('' for none).
_OBSERVE = f"""
local prefix = ARGV[1]
if ARGV[2] ~= '' then
  if not redis.call('SET', prefix .. ':usage:batch:' .. ARGV[2], '1', 'NX', 'EX',
      {_BATCH_SECONDS}) then
    return 0
  end
end
local length = tonumber(ARGV[3])
local function capped(key, field, counter, cap)
  if redis.call('HEXISTS', key, field) == 1 then
    redis.call('HINCRBY', key, field, 1)
  elseif tonumber(redis.call('HGET', key, counter) or '0') < cap then
    redis.call('HSET', key, field, 1)
    redis.call('HINCRBY', key, counter, 1)
  else
    redis.call('HINCRBY', key, counter .. ':over', 1)
  end
end
local i = 4
while i <= #ARGV do
  local rid, at = ARGV[i], tonumber(ARGV[i + 1])
  local window = math.floor(at / length)
  local member = rid .. '|' .. window
  local key = prefix .. ':usage:' .. member
  redis.call('HINCRBY', key, 'count', 1)
  local first = redis.call('HGET', key, 'first_ms')
  if not first or tonumber(first) > at then redis.call('HSET', key, 'first_ms', ARGV[i + 1]) end
  local last = redis.call('HGET', key, 'last_ms')
  if not last or tonumber(last) < at then redis.call('HSET', key, 'last_ms', ARGV[i + 1]) end
  capped(key, 'o:' .. ARGV[i + 2], 'operations', {MAX_OPERATIONS})
  if ARGV[i + 3] ~= '' then capped(key, 'r:' .. ARGV[i + 3], 'resources', {MAX_RESOURCES}) end
  redis.call('HINCRBY', key, 'x:' .. ARGV[i + 4], 1)
  capped(key, 'p:' .. ARGV[i + 5], 'reporters', {MAX_REPORTERS})
  if ARGV[i + 6] == '1' then redis.call('HINCRBY', key, 'after_end', 1) end
  if ARGV[i + 7] ~= '' then capped(key, 'y:' .. ARGV[i + 7], 'reasons', {MAX_REASONS}) end
  redis.call('ZADD', prefix .. ':usage:pending', 'NX', (window + 1) * length, member)
  i = i + 8
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Observation:
    """One use of the credential of ``request_id``, at the broker's time of receipt."""

    request_id: str
    at_ms: int
    operation: str
    resource: str | None
    outcome: str
    reporter: str
    # The grant was no longer in force (revoked or expired) when it was used.
    after_end: bool = False
    # Why the use was refused, as the reporter names it.
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class WindowUse:
    """The aggregate of one grant's uses in one window."""

    member: str  # "<request id>|<window>"
    request_id: str
    start_ms: int
    end_ms: int
    count: int
    first_ms: int
    last_ms: int
    operations: Mapping[str, int]
    outcomes: Mapping[str, int]
    resources: Mapping[str, int]
    reporters: Sequence[str]
    after_end: int
    # Refused uses by the reporter's reason.
    refusals: Mapping[str, int]
    # Distinct resources or operations past the caps, counted but not named.
    unnamed: Mapping[str, int]

    def evidence(self) -> dict[str, Any]:
        """What the ``used`` record keeps (times in milliseconds are formatted by the caller)."""
        return {
            "count": self.count,
            "operations": dict(sorted(self.operations.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "resources": sorted(self.resources),
            "reporters": sorted(self.reporters),
            "after_end": self.after_end,
            **({"refusals": dict(sorted(self.refusals.items()))} if self.refusals else {}),
            **({"unnamed": dict(self.unnamed)} if self.unnamed else {}),
        }


class RedisUsage:
    def __init__(self, client: aioredis.Redis, window_seconds: float) -> None:
        self._client = client
        self._observe = client.register_script(_OBSERVE)
        self.window_ms = max(1, int(window_seconds * 1000))

    async def observe(self, observations: Sequence[Observation], batch_id: str = "") -> bool:
        """Add ``observations`` to their windows; False when ``batch_id`` was seen before
        (nothing added)."""
        if not observations:
            return True
        args: list[str | int] = [keys.PREFIX, batch_id, self.window_ms]
        for seen in observations:
            args += [
                seen.request_id,
                seen.at_ms,
                seen.operation,
                seen.resource or "",
                seen.outcome,
                seen.reporter,
                1 if seen.after_end else 0,
                seen.reason or "",
            ]
        try:
            return bool(await self._observe(keys=[keys.USAGE_PENDING], args=args))
        except RedisError as exc:
            raise unavailable(exc, "the usage store") from exc

    async def closed(self, before_ms: int, limit: int = 500) -> list[str]:
        """Members of windows that ended before ``before_ms``, oldest first."""
        try:
            raw = await self._client.zrangebyscore(
                keys.USAGE_PENDING, "-inf", before_ms, start=0, num=limit
            )
        except RedisError as exc:
            raise unavailable(exc, "the usage store") from exc
        return [as_text(member) for member in raw if isinstance(member, bytes | str)]

    async def read(self, member: str) -> WindowUse | None:
        try:
            raw = await self._client.hgetall(keys.usage(member))
        except RedisError as exc:
            raise unavailable(exc, "the usage store") from exc
        if not raw:
            return None
        return _window_use(member, {as_text(k): as_text(v) for k, v in raw.items()}, self.window_ms)


def _window_use(member: str, fields: Mapping[str, str], window_ms: int) -> WindowUse:
    request_id, _, window = member.rpartition("|")

    def named(prefix: str) -> dict[str, int]:
        return {k[len(prefix) :]: int(v) for k, v in fields.items() if k.startswith(prefix)}

    unnamed = {
        name: int(fields[f"{name}:over"])
        for name in ("operations", "resources", "reporters", "reasons")
        if f"{name}:over" in fields
    }
    start = int(window) * window_ms
    return WindowUse(
        member=member,
        request_id=request_id,
        start_ms=start,
        end_ms=start + window_ms,
        count=int(fields.get("count", "0")),
        first_ms=int(fields.get("first_ms", "0")),
        last_ms=int(fields.get("last_ms", "0")),
        operations=named("o:"),
        outcomes=named("x:"),
        resources=named("r:"),
        reporters=list(named("p:")),
        after_end=int(fields.get("after_end", "0")),
        refusals=named("y:"),
        unnamed=unnamed,
    )
