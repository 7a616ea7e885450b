"""Time-ordered identifiers (UUIDv7, RFC 9562), built from a clock reading and random bits."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from grantline.domain.models import RequestId


def uuid7(moment: datetime, random_bits: bytes | None = None) -> uuid.UUID:
    """A UUIDv7 whose first 48 bits are ``moment`` in Unix milliseconds."""
    millis = int(moment.timestamp() * 1000)
    rand = random_bits if random_bits is not None else secrets.token_bytes(10)
    if len(rand) != 10:
        raise ValueError("uuid7 needs exactly 10 random bytes")
    raw = bytearray(millis.to_bytes(6, "big") + rand)
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 9562 variant
    return uuid.UUID(bytes=bytes(raw))


def new_request_id(moment: datetime) -> RequestId:
    return RequestId(str(uuid7(moment)))
