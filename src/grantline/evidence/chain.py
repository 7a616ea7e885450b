"""The hash chain of records: the head of the log and sealing the next record onto it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grantline.domain.errors import IntegrityError
from grantline.domain.models import format_time
from grantline.evidence.canonical import is_json_int
from grantline.evidence.record import GENESIS, HASH_PATTERN, RECORD_DOMAIN, chain_hash, seal
from grantline.evidence.signer import Signer

FORMAT_VERSION = 1
RESERVED_FIELDS = frozenset({"v", "seq", "prev", "request_id", "event", "at", "kid", "data", "sig"})
TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record of a chain: its ``seq`` (0 for an empty log) and its chain hash."""

    seq: int
    hash: str

    @classmethod
    def genesis(cls) -> ChainHead:
        return cls(0, GENESIS)


def seal_next(
    head: ChainHead,
    *,
    request_id: str,
    event: str,
    at: datetime,
    data: Mapping[str, Any],
    signer: Signer,
    extra: Mapping[str, Any] | None = None,
) -> tuple[bytes, ChainHead]:
    """Seal the record that follows ``head``; return its line and the new head.

    ``extra`` adds top-level fields (e.g. ``break_glass``) beside the reserved ones. Raises
    :class:`IntegrityError` when ``extra`` names a reserved field or a value is not
    canonicalisable (a float, a datetime, ...), and ``ValueError`` for a naive ``at``.
    """
    body: dict[str, Any] = {}
    if extra:
        clash = RESERVED_FIELDS.intersection(extra)
        if clash:
            raise IntegrityError(f"extra fields may not replace {sorted(clash)}")
        body.update(extra)
    body.update(
        v=FORMAT_VERSION,
        seq=head.seq + 1,
        prev=head.hash,
        request_id=str(request_id),
        event=str(event),
        at=format_time(at),
        data=data,
    )
    line = seal(body, signer, RECORD_DOMAIN)
    return line, ChainHead(head.seq + 1, chain_hash(line))


def check_record_fields(body: Mapping[str, Any]) -> None:
    """Check the types of a record's reserved fields.

    Raises :class:`IntegrityError` (code ``invalid_field``) naming the first wrong field.
    """
    checks = (
        ("v", is_json_int(body.get("v")) and body.get("v") == FORMAT_VERSION),
        ("seq", is_json_int(body.get("seq")) and body["seq"] >= 1),
        ("prev", _matches(HASH_PATTERN, body.get("prev"))),
        ("request_id", isinstance(body.get("request_id"), str)),
        ("event", isinstance(body.get("event"), str) and body["event"] != "checkpoint"),
        ("at", _matches(TIME_PATTERN, body.get("at"))),
        ("kid", isinstance(body.get("kid"), str)),
        ("data", isinstance(body.get("data"), dict)),
    )
    for name, good in checks:
        if not good:
            raise IntegrityError(
                f"field {name!r} is missing or has the wrong type or form", code="invalid_field"
            )


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None
