"""Uses of Vault grant tokens, read from OpenBao's file audit log and linked to their grants.

OpenBao writes one JSON line per request and response, with every token and accessor
HMAC'd under a salt of the audit device. ``sys/audit-hash/<device>`` gives the same HMAC for
a value the broker knows: the accessor it recorded for each ``vault_token`` grant. A request
made with a token already revoked carries no accessor, only the HMAC of the token itself;
that one is learnt from the response that created the token (``auth/token/create/<role>``),
or from an earlier request that named both.

The log is read incrementally from a position kept in the store. A log whose first line
changed (rotated: a new file) or that is shorter than the position is read from its start.
Raw lines are never logged: they are HMAC'd, but they are still the audit trail of others.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grantline.domain.clock import Clock
from grantline.domain.models import CredentialType, parse_time
from grantline.issuers.vault.client import META_REQUEST_ID

log = logging.getLogger(__name__)

# One read of the log: at most this much, cut after its last whole line.
CHUNK_BYTES = 1 << 20
_CHUNKS_PER_PASS = 16
# Links from an HMAC to its grant outlive the grant's expiry by this much, so a use after
# the end (revoked or expired) is still tied to its grant.
_RETENTION_SECONDS = 86_400
# Memory is a cache of the store: past this many entries it starts over.
_MEMORY = 100_000
_LEASE_SECONDS = 30.0
_END_FIELDS = ("revoked_at", "expired_at", "expires_at")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one response line of the audit log says, every token value HMAC'd."""

    at_ms: int
    operation: str
    path: str
    accessor: str | None
    token: str | None
    error: str | None
    # A token this request created: (its token HMAC, its accessor HMAC, its TTL in seconds).
    created: tuple[str, str, int] | None = None
    # The request id in that token's metadata (META_REQUEST_ID): a claim, checked by HMAC.
    created_for: str | None = None

    @property
    def outcome(self) -> str:
        if not self.error:
            return "allowed"
        refused = ("permission denied", "invalid token", "bad token")
        return "denied" if any(word in self.error.lower() for word in refused) else "error"


def parse_line(line: bytes) -> AuditEntry | None:
    """The response entry of one audit line; None for request entries and anything else."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("type") != "response":
        return None
    request, auth = _object(entry.get("request")), _object(entry.get("auth"))
    try:
        at = parse_time(str(entry["time"]))
    except (KeyError, ValueError):
        return None
    error = entry.get("error")
    created = _object(_object(entry.get("response")).get("auth"))
    return AuditEntry(
        at_ms=int(at.timestamp() * 1000),
        operation=str(request.get("operation") or "unknown"),
        path=str(request.get("path") or ""),
        # A refused token has no auth entry: the request still names it.
        accessor=_text(auth.get("accessor")) or _text(request.get("client_token_accessor")),
        token=_text(auth.get("client_token")) or _text(request.get("client_token")),
        error=str(error) if error else None,
        created=_created(created),
        created_for=_text(_object(created.get("metadata")).get(META_REQUEST_ID)),
    )


def _created(auth: Mapping[str, Any]) -> tuple[str, str, int] | None:
    token, accessor = _text(auth.get("client_token")), _text(auth.get("accessor"))
    if token is None or accessor is None:
        return None
    ttl = auth.get("token_ttl")
    return token, accessor, ttl if isinstance(ttl, int) and ttl > 0 else _RETENTION_SECONDS


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Position:
    """How far a log was read. ``log`` names the file by a digest of its first line."""

    log: str
    offset: int
    # A chunk read up to here whose uses may be counted already: read again exactly, so
    # its batch id is the same and it counts once.
    pending_end: int | None = None

    def dumps(self) -> str:
        return json.dumps({"log": self.log, "offset": self.offset, "end": self.pending_end})

    @classmethod
    def loads(cls, text: str | None) -> Position | None:
        try:
            raw = json.loads(text or "null")
            return cls(str(raw["log"]), int(raw["offset"]), raw["end"] and int(raw["end"]))
        except (TypeError, ValueError, KeyError):
            return None


@dataclass(frozen=True, slots=True)
class Chunk:
    log: str
    start: int
    end: int
    lines: tuple[bytes, ...]


def read_chunk(path: Path, position: Position | None, limit: int = CHUNK_BYTES) -> Chunk | None:
    """The whole lines after ``position`` (at most ``limit`` bytes); None when the file is
    missing or its first line is not yet whole. A line longer than ``limit`` is skipped."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        first = handle.readline(4096)
        if not first.endswith(b"\n") and len(first) < 4096:
            return None
        log_id = hashlib.sha256(first).hexdigest()[:16]
        same = position is not None and position.log == log_id and position.offset <= size
        start = position.offset if same and position is not None else 0
        end = position.pending_end if same and position is not None else None
        handle.seek(start)
        if end is not None and end <= size:
            data = handle.read(end - start)
            return Chunk(log_id, start, end, tuple(data.splitlines()))
        data = handle.read(limit)
        cut = data.rfind(b"\n")
        if cut >= 0:
            return Chunk(log_id, start, start + cut + 1, tuple(data[: cut + 1].splitlines()))
        if len(data) < limit:
            return Chunk(log_id, start, start, ())  # a line still being written
        return _skip_long_line(handle, log_id, start, limit)


def _skip_long_line(handle: Any, log_id: str, start: int, limit: int) -> Chunk:
    at = start + limit
    while block := handle.read(limit):
        cut = block.find(b"\n")
        if cut >= 0:
            log.warning("skipped an audit log line longer than %d bytes", limit)
            return Chunk(log_id, start, at + cut + 1, ())
        at += len(block)
    return Chunk(log_id, start, start, ())


@dataclass(frozen=True, slots=True)
class VaultUse:
    """One request made with a grant's token, as the audit device saw it (its time is
    OpenBao's own: authoritative, unlike a reporter's)."""

    request_id: str
    at_ms: int
    operation: str
    resource: str
    outcome: str
    after_end: bool


class AuditHasher(Protocol):
    async def audit_hash(self, device: str, value: str) -> str: ...


class AuditState(Protocol):
    """Positions and HMAC links in the store, and the grants' state (store/vault_audit.py)."""

    async def position(self, log_id: str) -> str | None: ...
    async def save_position(self, log_id: str, position: str) -> None: ...
    async def links(self, names: Sequence[str]) -> list[str | None]: ...
    async def link(self, name: str, value: str, ttl_seconds: int) -> None: ...
    async def live_requests(self, limit: int = ...) -> list[str]: ...
    async def fields_of(
        self, request_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, str]]: ...


class Lease(Protocol):
    async def acquire(self, seconds: float) -> bool: ...


# Counts uses under a batch id; False when that batch was counted before.
Observe = Callable[[Sequence[VaultUse], str], Awaitable[bool]]


class AuditTail:
    """Reads the file audit log at ``path`` and counts the uses of grant tokens."""

    def __init__(
        self,
        *,
        path: Path,
        device: str,
        token_role: str,
        hasher: AuditHasher,
        state: AuditState,
        observe: Observe,
        lease: Lease,
        clock: Clock,
    ) -> None:
        self.reporter = f"openbao-audit:{device}"
        self._path, self._device, self._hasher = path, device, hasher
        self._state, self._observe, self._lease, self._clock = state, observe, lease, clock
        self._creations = f"auth/token/create/{token_role}"
        self._source = hashlib.sha256(f"{device}\0{path}".encode()).hexdigest()[:16]
        self._grants: dict[str, str] = {}  # accessor HMAC -> request id
        self._accessors: dict[str, str] = {}  # token HMAC -> accessor HMAC
        self._seen: set[str] = set()  # live requests already looked at

    async def run_once(self) -> int:
        """Read what the log gained since the last pass; how many uses were counted. One
        replica at a time (a lease): all read the same position.

        Raises:
            DependencyUnavailableError: the store failed; the next pass reads it again.
            IssuanceError: Vault would not hash an accessor.
        """
        if not await self._lease.acquire(_LEASE_SECONDS):
            return 0
        counted = 0
        for _ in range(_CHUNKS_PER_PASS):
            position = Position.loads(await self._state.position(self._source))
            chunk = await asyncio.to_thread(read_chunk, self._path, position)
            if chunk is None or (chunk.end == chunk.start and position is not None):
                break
            uses = await self._uses([e for e in map(parse_line, chunk.lines) if e is not None])
            if uses:
                pending = Position(chunk.log, chunk.start, chunk.end)
                await self._state.save_position(self._source, pending.dumps())
                batch = f"vault-audit:{self._source}:{chunk.log}:{chunk.start}:{chunk.end}"
                if await self._observe(uses, batch):
                    counted += len(uses)
            await self._state.save_position(self._source, Position(chunk.log, chunk.end).dumps())
        return counted

    async def _uses(self, entries: Sequence[AuditEntry]) -> list[VaultUse]:
        await self._learn_creations(entries)
        accessors = await self._accessors_of(entries)
        grants = await self._grants_of(set(accessors.values()))
        matched: list[tuple[AuditEntry, str]] = []
        for index, entry in enumerate(entries):
            rid = grants.get(accessors.get(index, ""))
            if rid is not None:
                matched.append((entry, rid))
        if not matched:
            return []
        ends = await self._ends({rid for _, rid in matched})
        for entry, _ in matched:
            if entry.token and entry.accessor and entry.token not in self._accessors:
                await self._remember_token(entry.token, entry.accessor, _RETENTION_SECONDS)
        return [
            VaultUse(
                request_id=rid,
                at_ms=entry.at_ms,
                operation=entry.operation,
                resource=entry.path,
                outcome=entry.outcome,
                after_end=ends.get(rid) is not None and entry.at_ms >= ends[rid],
            )
            for entry, rid in matched
        ]

    async def _learn_creations(self, entries: Sequence[AuditEntry]) -> None:
        """The token HMAC of each token the broker's token role created: after revocation,
        requests with that token name no accessor."""
        for entry in entries:
            if entry.path == self._creations and entry.created and not entry.error:
                token, accessor, ttl = entry.created
                await self._remember_token(token, accessor, ttl + _RETENTION_SECONDS)
                if entry.created_for and accessor not in self._grants:
                    await self._hash_grants([entry.created_for])

    async def _remember_token(self, token: str, accessor: str, ttl: int) -> None:
        _bound(self._accessors)
        self._accessors[token] = accessor
        await self._state.link(f"{self._device}:token:{token}", accessor, ttl)

    async def _accessors_of(self, entries: Sequence[AuditEntry]) -> dict[int, str]:
        """The accessor HMAC behind each entry that has one, by index."""
        unknown = sorted(
            {e.token for e in entries if not e.accessor and e.token} - set(self._accessors)
        )
        names = [f"{self._device}:token:{token}" for token in unknown]
        for token, accessor in zip(unknown, await self._state.links(names), strict=True):
            if accessor is not None:
                self._accessors[token] = accessor
        found = {}
        for index, entry in enumerate(entries):
            accessor = entry.accessor or self._accessors.get(entry.token or "")
            if accessor:
                found[index] = accessor
        return found

    async def _grants_of(self, accessors: set[str]) -> dict[str, str | None]:
        """The request id of each accessor HMAC's grant: from memory, the store, or the live
        grants not yet hashed."""
        unknown = sorted(accessors - set(self._grants))
        names = [f"{self._device}:accessor:{accessor}" for accessor in unknown]
        for accessor, rid in zip(unknown, await self._state.links(names), strict=True):
            if rid is not None:
                self._grants[accessor] = rid
        if accessors - set(self._grants):
            # Every use of a token comes after its grant's issued record: the live grants now
            # include any grant these lines used.
            await self._hash_live_grants()
        return {accessor: self._grants.get(accessor) for accessor in accessors}

    async def _hash_live_grants(self) -> None:
        await self._hash_grants(await self._state.live_requests())

    async def _hash_grants(self, request_ids: Sequence[str]) -> None:
        """Link the accessor HMAC of each ``vault_token`` grant among ``request_ids`` (a grant
        that is no longer live is linked too: its uses are after its end)."""
        fresh = [rid for rid in request_ids if rid not in self._seen]
        if not fresh:
            return
        fields = await self._state.fields_of(fresh, ("credential_type", "handle", "expires_at"))
        now_ms = int(self._clock.now().timestamp() * 1000)
        _bound(self._grants)
        if len(self._seen) > _MEMORY:
            self._seen.clear()
        for rid in fresh:
            state = fields.get(rid, {})
            accessor = _accessor(state)
            if accessor is None and "handle" not in state:
                continue  # not issued yet: looked at again once live
            if accessor is not None:
                hmac = await self._hasher.audit_hash(self._device, accessor)
                self._grants[hmac] = rid
                left = (_millis(state.get("expires_at")) or now_ms) - now_ms
                ttl = max(0, left // 1000) + _RETENTION_SECONDS
                await self._state.link(f"{self._device}:accessor:{hmac}", rid, ttl)
            self._seen.add(rid)

    async def _ends(self, request_ids: set[str]) -> dict[str, int]:
        """When each grant stopped being in force (revoked, expired, or due to expire)."""
        fields = await self._state.fields_of(sorted(request_ids), _END_FIELDS)
        ends: dict[str, int] = {}
        for rid, state in fields.items():
            times = [m for m in (_millis(state.get(name)) for name in _END_FIELDS) if m]
            if times:
                ends[rid] = min(times)
        return ends


def _accessor(state: Mapping[str, str]) -> str | None:
    if state.get("credential_type") != CredentialType.VAULT_TOKEN.value:
        return None
    try:
        handle = json.loads(state.get("handle") or "{}")
    except ValueError:
        return None
    return _text(handle.get("accessor")) if isinstance(handle, dict) else None


def _millis(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(parse_time(text).timestamp() * 1000)
    except ValueError:
        return None


def _bound(memory: dict[str, str]) -> None:
    if len(memory) > _MEMORY:
        memory.clear()  # the store still has every link
