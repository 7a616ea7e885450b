"""What one export line says, checked on its own: the part of verification that needs no
other line, so that it can run on every core (evidence/parallel.py).

The result holds only what the sequential checks (chain, Merkle tree, lineage) read next:
the reserved fields, the chain and leaf hashes, and the few data members lineage rules use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from grantline.domain.errors import IntegrityError
from grantline.evidence.canonical import is_json_int
from grantline.evidence.chain import check_record_fields
from grantline.evidence.checkpoint import CHECKPOINT_EVENT, Checkpoint, checkpoint_from
from grantline.evidence.merkle import leaf_hash
from grantline.evidence.record import (
    RECORD_DOMAIN,
    VerifyingKey,
    chain_hash,
    check_signed,
    read_line,
)

RECORD, CHECKPOINT, MALFORMED = 0, 1, 2

# The data members each lineage rule reads (evidence/verify.py), by event.
_LINEAGE_DATA = {
    "requested": ("identity", "actor"),
    "evaluated": ("decision", "policy_digest"),
    "approval_given": ("approver",),
    "approved": ("by", "approvers", "requirement", "review_due_at"),
    "used": ("count", "after_end"),
}


class Examined(NamedTuple):
    kind: int
    code: str | None = None  # the problem found, if any
    message: str = ""
    seq: int | None = None
    prev: object = None
    request_id: str | None = None
    event: str = ""
    at: str = ""
    data: Mapping[str, Any] | None = None
    chain: str = ""
    leaf: bytes = b""
    checkpoint: Checkpoint | None = None


def examine(raw: bytes, keys: Mapping[str, VerifyingKey]) -> Examined:
    """Check one line's form and signature; never raises for anything in ``raw``."""
    line = strip_terminator(raw)
    chain, leaf = chain_hash(line), leaf_hash(line)
    try:
        signed = read_line(line)
    except IntegrityError as exc:
        return Examined(MALFORMED, exc.code, exc.message, chain=chain, leaf=leaf)
    body = signed.body
    if body.get("event") == CHECKPOINT_EVENT:
        try:
            return Examined(CHECKPOINT, checkpoint=checkpoint_from(signed, keys))
        except IntegrityError as exc:
            return Examined(CHECKPOINT, exc.code, exc.message)
    try:
        check_signed(signed, keys, RECORD_DOMAIN)
        check_record_fields(body)
        problem = None
    except IntegrityError as exc:
        problem = exc
    event = body.get("event")
    data = body.get("data")
    wanted = _LINEAGE_DATA.get(event) if isinstance(event, str) else None
    return Examined(
        RECORD,
        problem.code if problem else None,
        problem.message if problem else "",
        body["seq"] if is_json_int(body.get("seq")) else None,
        body.get("prev"),
        body["request_id"] if isinstance(body.get("request_id"), str) else None,
        event if isinstance(event, str) else "",
        body["at"] if isinstance(body.get("at"), str) else "",
        {k: data[k] for k in wanted if k in data} if wanted and isinstance(data, dict) else {},
        chain,
        leaf,
    )


def strip_terminator(raw: bytes) -> bytes:
    if raw.endswith(b"\r\n"):
        return raw[:-2]
    if raw.endswith(b"\n"):
        return raw[:-1]
    return raw
