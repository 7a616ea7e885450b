"""The append-only log in Redis: a stream of signed lines, appended by compare-and-set on the head.

Layout: the stream ``{grantline}:log`` holds one entry per record with id ``<seq>-1`` and the
exact signed line in field ``r``; ``{grantline}:head`` holds ``"<seq> <chain hash>"``. One Lua
script checks the head, appends the lines, moves the head and applies the records' state
effects (request status, active grants, token ids) in a single atomic round trip, so the log
and the state derived from it never disagree, whichever replica wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.domain.models import ActiveGrant, RequestId, parse_time
from grantline.evidence.chain import ChainHead
from grantline.store import keys
from grantline.store.connection import as_text, unavailable
from grantline.store.durability import ConfirmedAppend, DurabilitySettings
from grantline.store.policy_archive import KeptBundle, KeptInput

# The batch key makes an append idempotent: a retry after a lost reply finds its own batch
# already applied instead of appending the records a second time under new seqs.
# The Merkle tree in Lua (store/tree.py has the layout): ``tree_entry`` addresses entry
# ``index`` of a level, as keys.tree_entry does in Python, in chunks of ``TREE_CHUNK`` entries,
# a local that ``tree_lua`` puts in front. ``tree_leaves`` is how many leaves the tree holds,
# checked where they end. ``frontier`` is the tree's frontier (its perfect subtrees, largest
# first) for the log of ``head``: `{head, leaves in the tree, frontier...}`. Shared by the
# append script (a refused append answers with the head and frontier to seal again on) and
# store/tree.py's reader.
FRONTIER_LUA = """
local function tree_entry(prefix, level, index)
  if index < TREE_CHUNK then return prefix .. ':tree:' .. level, index * 32 end
  local chunk = math.floor(index / TREE_CHUNK)
  return prefix .. ':tree:' .. level .. ':' .. string.format('%d', chunk),
    (index - chunk * TREE_CHUNK) * 32
end
-- The leaves of level 0, read where those of a log of ``size`` records end: the chunk where
-- leaf ``size`` would go, with the full chunks before it. -1, never ``size``, when the chunk
-- before is not full (a level that outgrew one string before levels were chunked, or a
-- damaged one) or a chunk holds a piece of a hash.
local function tree_leaves(prefix, size)
  local key, offset = tree_entry(prefix, 0, size)
  if size >= TREE_CHUNK then
    local before = tree_entry(prefix, 0, size - offset / 32 - 1)
    if redis.call('STRLEN', before) ~= TREE_CHUNK * 32 then return -1 end
  end
  local held = redis.call('STRLEN', key) - offset
  if held % 32 ~= 0 then return -1 end
  return size + held / 32
end
local function frontier(head, prefix)
  local size = tonumber(string.match(head, '^(%d+)'))
  local leaves = tree_leaves(prefix, size)
  local out = {head, string.format('%d', leaves)}
  if leaves ~= size then return out end
  local level = 0
  while (2 ^ level) <= size do
    if math.floor(size / (2 ^ level)) % 2 == 1 then
      local key, offset = tree_entry(prefix, level, math.floor(size / (2 ^ level)) - 1)
      -- Largest subtree first: each found is larger than those before it.
      table.insert(out, 3, redis.call('GETRANGE', key, offset, offset + 31))
    end
    level = level + 1
  end
  return out
end
"""


def tree_lua(script: str, chunk: int) -> str:
    """``script`` (FRONTIER_LUA and what follows) addressing the tree in chunks of ``chunk``."""
    return f"local TREE_CHUNK = {int(chunk)}\n{script}"


_APPEND = (
    FRONTIER_LUA
    + """
local done = redis.call('GET', KEYS[3])
-- A retried batch writes too (the TTL again), so a WAITAOF behind it waits for the append.
if done then redis.call('SET', KEYS[3], done, 'EX', 86400) return {2, done} end
local head = redis.call('GET', KEYS[2]) or '0 GENESIS'
local expected = tonumber(string.match(ARGV[1], '^(%d+)'))
-- Refused unless the head is the one sealed on and the tree covers exactly that log: nodes
-- computed from another frontier would shift the tree for good.
-- Fairness between writers (the workers and replicas of a broker): one that lost the race
-- for the head takes the turn for a short lease, and the others are refused until it has
-- appended, so no writer starves while another keeps appending. ARGV[6] names the writer.
local turn = redis.call('GET', KEYS[4])
-- A refusal after the turn was taken gives it up: the writer's next try is a new batch.
local function refuse(reply)
  if turn then redis.call('DEL', KEYS[4]) end
  return reply
end
if head ~= ARGV[1] or tree_leaves(ARGV[3], expected) ~= expected or #ARGV[4] % 33 ~= 0
    or (turn and turn ~= ARGV[6]) then
  if not turn and head ~= ARGV[1] then redis.call('SET', KEYS[4], ARGV[6], 'PX', 250) end
  local reply = frontier(head, ARGV[3])
  table.insert(reply, 1, 0)
  return reply
end
local prefix = ARGV[3]
-- Every decision's bundle must be kept: one the writer believes kept, and so does not send,
-- must be there (the store may have lost it), or the writer sends it and tries again.
for digest in string.gmatch(ARGV[5], '%S+') do
  if redis.call('HEXISTS', prefix .. ':policy:bundles', digest) == 0 then
    return refuse({3, digest})
  end
end
-- What can be refused (a bad argument) is written first, before the log moves: a write that
-- failed after the XADD would leave a record in the stream that the head never reached.
local decoded = {}
-- Separation of duties, checked before anything is written: an entry that excludes roles
-- refuses the whole batch if its subject holds an unexpired grant of one of them, or an entry
-- before it in this batch adds one. The decision that allowed it read active grants that may
-- be stale by now (another request, on any replica, issued meanwhile).
local adding = {}
local i = 7
while i <= #ARGV do
  if ARGV[i+3] ~= '' then
    local e = cjson.decode(ARGV[i+3])
    decoded[i] = e
    if e.exclude then
      local x = e.exclude
      local held = {}
      local index = prefix .. ':active:' .. x.subject
      for _, key in ipairs(redis.call('ZRANGEBYSCORE', index, '(' .. x.now_ms, '+inf')) do
        held[cjson.decode(key)[1]] = true
      end
      for _, role in ipairs(x.roles) do
        local added = adding[x.subject]
        if held[role] or (added and added[role]) then return refuse({4, ARGV[i+2], role}) end
      end
    end
    if e.active_add then
      local subject = e.active_add.subject
      adding[subject] = adding[subject] or {}
      adding[subject][cjson.decode(e.active_add.key)[1]] = true
    end
  end
  i = i + 4
end
i = 7
while i <= #ARGV do
  local seq, line, rid = ARGV[i], ARGV[i+1], ARGV[i+2]
  local e = decoded[i]
  -- What replays the record's decision is kept before the record names it.
  if e and e.keep_bundle then
    redis.call('HSETNX', prefix .. ':policy:bundles', e.keep_bundle.digest, e.keep_bundle.value)
  end
  if e and e.keep_input then
    local key = prefix .. ':policy:input:' .. e.keep_input.digest
    if e.keep_input.ttl_ms ~= '0' then
      redis.call('SET', key, e.keep_input.value, 'PX', e.keep_input.ttl_ms)
    else
      redis.call('SET', key, e.keep_input.value)
    end
  end
  redis.call('XADD', KEYS[1], seq .. '-1', 'r', line)
  redis.call('RPUSH', prefix .. ':lineage:' .. rid, seq)
  if e then
    if e.request then
      local args = {}
      for k, v in pairs(e.request) do table.insert(args, k); table.insert(args, tostring(v)) end
      redis.call('HSET', prefix .. ':req:' .. rid, unpack(args))
    end
    if e.active_add then
      -- Per subject: an index of (role, target) keys scored by their longest expiry, and per
      -- key the grants themselves, so a read costs one entry per role and target held.
      local a = e.active_add
      local index = prefix .. ':active:' .. a.subject
      local held = index .. ':' .. a.key
      redis.call('ZREMRANGEBYSCORE', index, '-inf', a.now_ms)
      redis.call('ZREMRANGEBYSCORE', held, '-inf', a.now_ms)
      redis.call('ZADD', held, a.until_ms, a.member)
      redis.call('ZADD', index, 'GT', a.until_ms, a.key)
      redis.call('HSET', prefix .. ':req:' .. rid, 'active_member', a.member, 'active_key', a.key)
    end
    if e.active_remove then
      local req = prefix .. ':req:' .. rid
      local member = redis.call('HGET', req, 'active_member')
      local key = redis.call('HGET', req, 'active_key')
      local index = prefix .. ':active:' .. e.active_remove.subject
      if member and key then
        local held = index .. ':' .. key
        redis.call('ZREM', held, member)
        local top = redis.call('ZREVRANGE', held, 0, 0, 'WITHSCORES')
        if #top == 0 then
          redis.call('ZREM', index, key)
        else
          redis.call('ZADD', index, top[2], key)
        end
      end
    end
    if e.jti then redis.call('SET', prefix .. ':jti:' .. e.jti, rid) end
    if e.pickup then
      redis.call('SET', prefix .. ':pickup:' .. rid, e.pickup.sealed, 'PX', e.pickup.ttl_ms)
    end
    if e.drop_pickup then redis.call('DEL', prefix .. ':pickup:' .. rid) end
    if e.usage_done then
      redis.call('ZREM', prefix .. ':usage:pending', e.usage_done)
      redis.call('DEL', prefix .. ':usage:' .. e.usage_done)
    end
    if e.zadd then
      for name, score in pairs(e.zadd) do
        redis.call('ZADD', prefix .. ':index:' .. name, score, rid)
      end
    end
    if e.zrem then
      for _, name in ipairs(e.zrem) do redis.call('ZREM', prefix .. ':index:' .. name, rid) end
    end
  end
  i = i + 4
end
-- The Merkle tree's new perfect nodes: 33-byte entries, a level byte then the hash, each the
-- next entry of its level (a tree of ``expected`` leaves has floor(expected / 2^level) there).
local nodes = ARGV[4]
local added = {}
for j = 1, #nodes, 33 do
  local level = string.byte(nodes, j)
  local index = math.floor(expected / (2 ^ level)) + (added[level] or 0)
  added[level] = (added[level] or 0) + 1
  redis.call('APPEND', (tree_entry(prefix, level, index)), string.sub(nodes, j + 1, j + 32))
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[2], 'EX', 86400)
if turn then redis.call('DEL', KEYS[4]) end
return {1, ARGV[2]}
"""
)


@dataclass(frozen=True, slots=True)
class ActiveAdd:
    """A grant entering the subject's active grants (pruning ones expired by ``now``).

    Per subject, an index of the (role, target) pairs held, scored by their longest expiry,
    and per pair the grants themselves: reading a subject's active grants costs one entry per
    pair held, however often the same role was granted again, and revoking the longest grant
    of a pair falls back to the next one.
    """

    subject: str
    grant: ActiveGrant
    now: datetime

    def encode(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "key": held_key(self.grant.role, self.grant.target),
            "member": encode_active(self.grant),
            "until_ms": to_millis(self.grant.expires_at),
            "now_ms": to_millis(self.now),
        }


def held_key(role: str, target: str) -> str:
    """The name of one (role, target) a subject may hold, under its active-grants index."""
    return json.dumps([role, target], separators=(",", ":"))


def encode_active(grant: ActiveGrant) -> str:
    return json.dumps(grant.as_policy_input(), sort_keys=True, separators=(",", ":"))


def decode_active(member: bytes | str) -> ActiveGrant:
    fields = json.loads(member)
    return ActiveGrant(
        request_id=RequestId(fields["request_id"]),
        role=fields["role"],
        target=fields["target"],
        expires_at=parse_time(fields["expires_at"]),
    )


def to_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Separation of duties at append time: the append is refused (all of its batch) if
    ``subject`` holds a grant of any of ``roles`` unexpired at ``now``, or an earlier record of
    the same batch adds one. The check and the grant it guards commit in one script."""

    subject: str
    roles: tuple[str, ...]
    now: datetime

    def encode(self) -> dict[str, Any]:
        # now_ms as a string: some Redis versions hand a Lua number on in exponent form.
        return {
            "subject": self.subject,
            "roles": list(self.roles),
            "now_ms": str(to_millis(self.now)),
        }


@dataclass(frozen=True, slots=True)
class Pickup:
    sealed: str  # base64 of the encrypted credential (store/pickup.py)
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class Effects:
    """State changes that commit atomically with a record."""

    request: Mapping[str, str | int] = field(default_factory=dict)
    active_add: ActiveAdd | None = None
    active_remove: str | None = None  # the subject whose active grant this record ends
    jti: str | None = None
    # Work lists the reconciler walks (keys.Index), each a sorted set of request ids: the
    # request enters ``index_add`` lists with the given score and leaves ``index_remove`` ones.
    index_add: Mapping[str, int] = field(default_factory=dict)
    index_remove: tuple[str, ...] = ()
    # An approved credential kept, sealed, for its requester to collect once: it is written
    # with the ``issued`` record, so neither exists without the other.
    pickup: Pickup | None = None
    # The waiting credential goes: it was collected, or the grant ended before it was.
    drop_pickup: bool = False
    # What replays the decision this record holds: its canonical input, and the bundle that
    # decided when this append is the first to name it (store/policy_archive.py).
    keep_input: KeptInput | None = None
    keep_bundle: KeptBundle | None = None
    # Roles the subject must not hold when this record is appended (separation of duties).
    exclude: Exclusion | None = None
    # The usage window this ``used`` record records, "<request id>|<window>": its aggregate
    # goes with the record, so a window is recorded once (store/usage.py).
    usage_done: str | None = None

    def encode(self) -> str:
        parts: dict[str, Any] = {
            "request": dict(self.request) if self.request else None,
            "active_add": self.active_add.encode() if self.active_add else None,
            "active_remove": {"subject": self.active_remove} if self.active_remove else None,
            "jti": self.jti,
            "zadd": dict(self.index_add) if self.index_add else None,
            "zrem": list(self.index_remove) if self.index_remove else None,
            # Numbers as strings: some Redis versions hand a Lua number on in exponent
            # form (8.64e+10), which SET ... PX refuses.
            "pickup": (
                {"sealed": self.pickup.sealed, "ttl_ms": str(self.pickup.ttl_ms)}
                if self.pickup
                else None
            ),
            "drop_pickup": True if self.drop_pickup else None,
            "keep_input": self.keep_input.encode() if self.keep_input else None,
            "keep_bundle": self.keep_bundle.encode() if self.keep_bundle else None,
            "exclude": self.exclude.encode() if self.exclude and self.exclude.roles else None,
            "usage_done": self.usage_done,
        }
        # The script tests each part for presence: an absent part must not be sent at all.
        payload = {name: part for name, part in parts.items() if part}
        return json.dumps(payload) if payload else ""


@dataclass(frozen=True, slots=True)
class SealedEntry:
    seq: int
    line: bytes
    request_id: str
    effects: Effects


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    applied: bool
    head: ChainHead
    # When refused: the Merkle tree's leaf count and frontier at ``head`` (store/tree.py).
    tree_size: int = 0
    frontier: tuple[bytes, ...] = ()
    # When refused because the store lacks a policy bundle the batch relies on: its digest.
    missing_bundle: str = ""
    # When refused by separation of duties: the request whose record excluded a role the
    # subject holds, and that role.
    conflict: tuple[str, str] | None = None


def _encode_head(head: ChainHead) -> str:
    return "0 GENESIS" if head.seq == 0 else f"{head.seq} {head.hash}"


def decode_head(raw: bytes | str | None) -> ChainHead:
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not text or text == "0 GENESIS":
        return ChainHead.genesis()
    seq, digest = text.split(" ", 1)
    return ChainHead(seq=int(seq), hash=digest)


class RedisLog:
    """Reads and appends the signed log. Every Redis failure becomes DependencyUnavailableError."""

    def __init__(
        self, client: aioredis.Redis, durability: DurabilitySettings | None = None
    ) -> None:
        self._client = client
        # The append script, run so that what it wrote is confirmed durable (durability.py).
        self._append = ConfirmedAppend(
            client,
            client.register_script(tree_lua(_APPEND, keys.TREE_CHUNK)),
            durability or DurabilitySettings(),
        )

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    async def head(self) -> ChainHead:
        raw = await self._call(self._client.get(keys.HEAD))
        return decode_head(raw)

    async def compare_and_append(
        self,
        expected: ChainHead,
        new_head: ChainHead,
        entries: Sequence[SealedEntry],
        batch_id: str,
        tree_nodes: bytes = b"",
        *,
        writer: str,
        kept_bundles: Sequence[str] = (),
    ) -> AppendOutcome:
        """Append ``entries`` if the head is still ``expected``; otherwise report the real head.

        ``tree_nodes`` are the Merkle tree's nodes the entries complete (store/tree.py),
        appended in the same atomic step so the tree always covers exactly the log.
        ``kept_bundles`` are policy bundles the entries name without carrying them: the
        append is refused (``missing_bundle``) unless the store holds each. ``writer``
        names the appending process: one that lost the race for the head is given the next
        turn (see the script).
        """
        args: list[str | bytes | int] = [
            _encode_head(expected),
            _encode_head(new_head),
            keys.PREFIX,
            tree_nodes,
            " ".join(kept_bundles),
            writer,
        ]
        for entry in entries:
            args += [entry.seq, entry.line, entry.request_id, entry.effects.encode()]
        reply = await self._call(
            self._append(keys=[keys.LOG, keys.HEAD, keys.batch(batch_id), keys.LOG_TURN], args=args)
        )
        # 1: appended now; 2: this batch was appended by an earlier try; 0: the head moved,
        # and the reply goes on with the tree's size and frontier at the real head; 3: a
        # bundle in ``kept_bundles`` is missing; 4: separation of duties refused the batch.
        if int(reply[0]) == 3:
            return AppendOutcome(False, expected, missing_bundle=as_text(reply[1]))
        if int(reply[0]) == 4:
            return AppendOutcome(False, expected, conflict=(as_text(reply[1]), as_text(reply[2])))
        status, head = int(reply[0]), decode_head(reply[1])
        if status == 0:
            return AppendOutcome(False, head, int(reply[2]), tuple(bytes(n) for n in reply[3:]))
        return AppendOutcome(applied=True, head=head)

    async def read(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` records with seq > ``after``, oldest first."""
        entries = await self._call(
            self._client.xrange(keys.LOG, min=f"{after + 1}-0", max="+", count=limit)
        )
        return [(int(entry_id.split(b"-")[0]), fields[b"r"]) for entry_id, fields in entries]

    async def lineage(self, request_id: str) -> list[bytes]:
        """Every record of one request, in log order."""
        seqs = await self._call(self._client.lrange(keys.lineage(request_id), 0, -1))
        if not seqs:
            return []
        pipe = self._client.pipeline(transaction=False)
        for seq in seqs:
            pipe.xrange(keys.LOG, min=f"{int(seq)}-1", max=f"{int(seq)}-1")
        replies = await self._call(pipe.execute())
        return [reply[0][1][b"r"] for reply in replies if reply]

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except RedisError as exc:
            raise unavailable(exc, "the log store") from exc
