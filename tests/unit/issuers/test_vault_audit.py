"""The OpenBao audit log reader: parsing real audit lines, reading incrementally through
rotation and truncation, and linking lines to grants by HMAC'd accessor and token.

The sample was captured from the e2e test's OpenBao: a root token writing test data, the
broker creating a grant token (whose accessor HMAC ends 885e1), three reads with it, the
broker revoking it, and one refused read after that. It holds HMACs, never a token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grantline.issuers.vault.audit import (
    AuditTail,
    Position,
    VaultUse,
    parse_line,
    read_chunk,
)

SAMPLE = Path(__file__).with_name("openbao-audit-sample.jsonl").read_bytes().splitlines()
GRANT_ACCESSOR_HMAC = "hmac-sha256:7efe1f18a66456c4a5b965f491a0f590ea6191a6fa0b0acc43396e56aec885e1"
GRANT_TOKEN_HMAC = "hmac-sha256:21b036dbfc9de22df7705381b95ac89781385972cf03d364f4110d4cfa2a368b"
REQUEST_ID = "01a20c2a-27c1-7cda-a3e1-9ade886d08d3"


def test_request_lines_and_junk_are_not_entries() -> None:
    assert parse_line(SAMPLE[0]) is None  # the "request" half of a request
    assert parse_line(b"not json") is None
    assert parse_line(b'{"type": "response"}') is None  # no time
    assert parse_line(b"[1, 2]") is None


def test_a_read_with_a_grant_token_names_its_path_operation_and_hmacs() -> None:
    entry = parse_line(SAMPLE[4])
    assert entry is not None
    assert (entry.path, entry.operation, entry.outcome) == ("secret/data/app/db", "read", "allowed")
    assert (entry.accessor, entry.token) == (GRANT_ACCESSOR_HMAC, GRANT_TOKEN_HMAC)
    assert entry.at_ms == int(datetime(2026, 11, 24, 6, 6, 59, 22971, UTC).timestamp() * 1000)


def test_a_token_creation_names_the_new_tokens_hmacs() -> None:
    entry = parse_line(SAMPLE[3])
    assert entry is not None and entry.path == "auth/token/create/grantline"
    assert entry.accessor != GRANT_ACCESSOR_HMAC  # the broker's own token made the request
    # The same HMACs as the token's later requests carry: the salt is the device's.
    assert entry.created is not None
    assert entry.created[:2] == (GRANT_TOKEN_HMAC, GRANT_ACCESSOR_HMAC)
    assert 0 < entry.created[2] <= 600


def test_a_revoked_token_is_refused_and_named_by_its_token_hmac_only() -> None:
    entry = parse_line(SAMPLE[-1])
    assert entry is not None
    assert entry.outcome == "denied"
    assert (entry.accessor, entry.token) == (None, GRANT_TOKEN_HMAC)


# -- reading the file --------------------------------------------------------------------------


def write(path: Path, lines: Sequence[bytes], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines) + tail)


def test_only_whole_lines_are_read_and_the_next_read_starts_after_them(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE[:3], tail=SAMPLE[3][:50])
    first = read_chunk(log, None)
    assert first is not None and first.lines == tuple(SAMPLE[:3])
    again = read_chunk(log, Position(first.log, first.end))
    assert again is not None and again.lines == () and again.end == first.end
    write(log, SAMPLE[:5])
    rest = read_chunk(log, Position(first.log, first.end))
    assert rest is not None and rest.lines == tuple(SAMPLE[3:5])


def test_a_rotated_log_and_a_truncated_log_are_read_from_their_start(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE[:5])
    first = read_chunk(log, None)
    assert first is not None
    log.unlink()
    write(log, SAMPLE[5:])  # a new file: another first line
    rotated = read_chunk(log, Position(first.log, first.end))
    assert rotated is not None and rotated.start == 0 and rotated.lines == tuple(SAMPLE[5:])
    assert rotated.log != first.log
    write(log, SAMPLE[5:6])  # same first line, shorter than the position
    truncated = read_chunk(log, Position(rotated.log, rotated.end))
    assert truncated is not None and truncated.start == 0 and truncated.lines == (SAMPLE[5],)


def test_a_pending_chunk_is_read_again_exactly(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE)
    whole = read_chunk(log, None)
    assert whole is not None
    end = len(b"".join(line + b"\n" for line in SAMPLE[:4]))
    again = read_chunk(log, Position(whole.log, 0, end))
    assert again is not None and (again.start, again.end) == (0, end)
    assert again.lines == tuple(SAMPLE[:4])


def test_a_line_longer_than_a_read_is_skipped_whole(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write(log, [SAMPLE[1], b"x" * 5000, SAMPLE[2]])
    first = read_chunk(log, None, limit=len(SAMPLE[1]) + 1)
    assert first is not None and first.lines == (SAMPLE[1],)
    skipped = read_chunk(log, Position(first.log, first.end), limit=1000)
    assert skipped is not None and skipped.lines == () and skipped.end == first.end + 5001
    last = read_chunk(log, Position(first.log, skipped.end), limit=len(SAMPLE[2]) + 1)
    assert last is not None and last.lines == (SAMPLE[2],)


def test_a_missing_log_is_nothing_to_read(tmp_path: Path) -> None:
    assert read_chunk(tmp_path / "absent.log", None) is None


# -- linking lines to grants -------------------------------------------------------------------


class State:
    """In-memory stand-in for store/vault_audit.RedisAuditState."""

    def __init__(self, requests: dict[str, dict[str, str]], live: list[str]) -> None:
        self.requests, self.live = requests, live
        self.positions: dict[str, str] = {}
        self.linked: dict[str, str] = {}

    async def position(self, log_id: str) -> str | None:
        return self.positions.get(log_id)

    async def save_position(self, log_id: str, position: str) -> None:
        self.positions[log_id] = position

    async def links(self, names: Sequence[str]) -> list[str | None]:
        return [self.linked.get(name) for name in names]

    async def link(self, name: str, value: str, ttl_seconds: int) -> None:
        assert ttl_seconds > 0
        self.linked[name] = value

    async def live_requests(self, limit: int = 10_000) -> list[str]:
        return self.live[:limit]

    async def fields_of(
        self, request_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, str]]:
        return {
            rid: {n: v for n, v in self.requests.get(rid, {}).items() if n in names}
            for rid in request_ids
        }


class Hasher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def audit_hash(self, device: str, value: str) -> str:
        self.calls.append(value)
        return GRANT_ACCESSOR_HMAC if value == "the-accessor" else f"hmac-sha256:{value}"


class Lease:
    async def acquire(self, seconds: float) -> bool:
        return True


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 24, 6, 7, tzinfo=UTC)


GRANT = {
    "credential_type": "vault_token",
    "handle": json.dumps({"accessor": "the-accessor"}),
    "expires_at": "2026-11-24T06:16:59.000Z",
}
JWT_GRANT = {"credential_type": "jwt", "handle": json.dumps({"jti": "x"})}


def tail_over(log: Path, state: State, batches: list[tuple[list[VaultUse], str]]) -> AuditTail:
    async def observe(uses: Sequence[VaultUse], batch_id: str) -> bool:
        # Like RedisUsage.observe: a batch id seen before counts nothing.
        fresh = batch_id not in {seen for _, seen in batches}
        batches.append((list(uses), batch_id))
        return fresh

    return AuditTail(
        path=log,
        device="file",
        token_role="grantline",
        hasher=Hasher(),
        state=state,
        observe=observe,
        lease=Lease(),
        clock=Clock(),
    )


async def test_reads_with_a_grant_token_are_its_uses_and_other_tokens_are_skipped(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE[:-2])  # up to the reads, before the revocation
    state = State({REQUEST_ID: GRANT, "jwt-grant": JWT_GRANT}, [REQUEST_ID, "jwt-grant"])
    batches: list[tuple[list[VaultUse], str]] = []
    tail = tail_over(log, state, batches)

    assert await tail.run_once() == 3
    uses = batches[0][0]
    assert {u.request_id for u in uses} == {REQUEST_ID}
    read = ["secret/data/app/db", "secret/data/app/cache", "secret/data/app/db"]
    assert [u.resource for u in uses] == read
    assert {(u.operation, u.outcome, u.after_end) for u in uses} == {("read", "allowed", False)}
    assert tail.reporter == "openbao-audit:file"
    assert await tail.run_once() == 0  # nothing new: nothing counted twice


async def test_a_refused_use_after_revocation_is_linked_by_token_and_after_the_end(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE[:-2])
    state = State({REQUEST_ID: dict(GRANT)}, [REQUEST_ID])
    batches: list[tuple[list[VaultUse], str]] = []
    await tail_over(log, state, batches).run_once()
    # Revoked, out of the live grants; a new process with only the store's links.
    state.requests[REQUEST_ID]["revoked_at"] = "2026-11-24T06:07:02.000Z"
    state.live = []
    write(log, SAMPLE)
    later: list[tuple[list[VaultUse], str]] = []
    assert await tail_over(log, state, later).run_once() == 1
    (late,) = later[0][0]
    assert (late.request_id, late.outcome, late.after_end) == (REQUEST_ID, "denied", True)


async def test_a_batch_read_again_after_a_crash_has_the_same_batch_id(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE[:-2])
    state = State({REQUEST_ID: GRANT}, [REQUEST_ID])
    batches: list[tuple[list[VaultUse], str]] = []
    tail = tail_over(log, state, batches)

    class CrashError(Exception):
        pass

    async def crashing(uses: Sequence[VaultUse], batch_id: str) -> bool:
        batches.append((list(uses), batch_id))
        raise CrashError

    tail._observe = crashing  # the store failed after counting, before the position moved
    with pytest.raises(CrashError):
        await tail.run_once()
    write(log, SAMPLE)  # more lines arrived meanwhile
    retry = tail_over(log, state, batches)
    assert await retry.run_once() == 1  # the pending chunk counts nothing again; the rest does
    assert batches[1][1] == batches[0][1]
    assert len(batches[1][0]) == 3 and len(batches[2][0]) == 1


async def test_grants_other_than_vault_tokens_are_never_hashed(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE[:3])
    state = State({"jwt-grant": JWT_GRANT}, ["jwt-grant"])
    tail = tail_over(log, state, [])
    hasher = Hasher()
    tail._hasher = hasher
    assert await tail.run_once() == 0
    assert hasher.calls == []


async def test_a_grant_ended_before_any_pass_is_linked_through_its_creation_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE)
    revoked = {**GRANT, "status": "revoked", "revoked_at": "2026-11-24T06:07:02.000Z"}
    state = State({REQUEST_ID: revoked}, [])  # no longer live when the log is first read
    batches: list[tuple[list[VaultUse], str]] = []
    assert await tail_over(log, state, batches).run_once() == 4
    uses = batches[0][0]
    assert [(u.outcome, u.after_end) for u in uses] == [("allowed", False)] * 3 + [("denied", True)]


async def test_a_creation_claiming_a_grant_whose_accessor_differs_is_not_linked(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.log"
    write(log, SAMPLE)
    other = {**GRANT, "handle": json.dumps({"accessor": "another-accessor"})}
    state = State({REQUEST_ID: other}, [])
    assert await tail_over(log, state, []).run_once() == 0
