"""Checkpoints: signed statements of the log's size and head, which make a cut tail visible."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grantline.domain.errors import IntegrityError
from grantline.domain.models import format_time
from grantline.evidence.canonical import is_json_int
from grantline.evidence.chain import FORMAT_VERSION, TIME_PATTERN, ChainHead
from grantline.evidence.merkle import HASH_SIZE
from grantline.evidence.record import (
    CHECKPOINT_DOMAIN,
    HASH_PATTERN,
    SignedLine,
    VerifyingKey,
    check_signed,
    read_line,
    seal,
)
from grantline.evidence.signer import Signer

CHECKPOINT_EVENT = "checkpoint"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified checkpoint: log ``origin`` had ``size`` records, the last hashing to ``head``."""

    origin: str
    size: int
    head: str
    at: str
    kid: str
    root: str | None = None  # base64 Merkle root of the first ``size`` records, when stated


def make_checkpoint(
    head: ChainHead,
    *,
    origin: str,
    at: datetime,
    signer: Signer,
    root: bytes | None = None,
) -> bytes:
    """The signed checkpoint line over ``head`` (and the Merkle ``root`` of the same records,
    when given). Checkpoints are not links of the chain.

    Raises ``ValueError`` for a naive ``at``.
    """
    body: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "event": CHECKPOINT_EVENT,
        "origin": origin,
        "size": head.seq,
        "head": head.hash,
        "at": format_time(at),
    }
    if root is not None:
        body["root"] = base64.b64encode(root).decode("ascii")
    return seal(body, signer, CHECKPOINT_DOMAIN)


def parse_checkpoint(line: bytes, keys: Mapping[str, VerifyingKey]) -> Checkpoint:
    """Verify a checkpoint line and return what it states.

    Raises :class:`IntegrityError` whose ``code`` is a verifier finding code: ``malformed_line``,
    ``unknown_kid``, ``bad_signature``, ``duplicate_key``, ``not_canonical`` or ``invalid_field``.
    """
    signed = read_line(line)
    if signed.body.get("event") != CHECKPOINT_EVENT:
        raise IntegrityError("the line is not a checkpoint", code="invalid_field")
    return checkpoint_from(signed, keys)


def checkpoint_from(signed: SignedLine, keys: Mapping[str, VerifyingKey]) -> Checkpoint:
    """Verify an already split checkpoint line; raises as :func:`parse_checkpoint`."""
    check_signed(signed, keys, CHECKPOINT_DOMAIN)
    body = signed.body
    _check_fields(body)
    root = body.get("root")
    return Checkpoint(
        body["origin"],
        body["size"],
        body["head"],
        body["at"],
        body["kid"],
        root if isinstance(root, str) else None,
    )


def _check_fields(body: Mapping[str, Any]) -> None:
    checks = (
        ("v", is_json_int(body.get("v")) and body.get("v") == FORMAT_VERSION),
        ("origin", isinstance(body.get("origin"), str)),
        ("size", is_json_int(body.get("size")) and body["size"] >= 0),
        ("head", isinstance(body.get("head"), str) and HASH_PATTERN.fullmatch(body["head"])),
        ("at", isinstance(body.get("at"), str) and TIME_PATTERN.fullmatch(body["at"])),
        ("root", "root" not in body or _is_root(body["root"])),
    )
    for name, good in checks:
        if not good:
            raise IntegrityError(
                f"checkpoint field {name!r} is missing or wrong", code="invalid_field"
            )


def _is_root(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == HASH_SIZE
    except binascii.Error:
        return False
