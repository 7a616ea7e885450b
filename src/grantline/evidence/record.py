"""The signed line: seal a body into bytes, split a line back, check its signature, hash it.

A line is the canonical body with ``,"sig":"<base64url>"`` spliced in before its final
``}``; the signature covers the body's exact bytes, so verifiers never re-serialise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature

from grantline.domain.errors import IntegrityError
from grantline.evidence.canonical import (
    b64url_decode,
    b64url_encode,
    canonicalize,
    canonicalize_parsed,
    parse_json,
)
from grantline.evidence.signer import Signer

RECORD_DOMAIN = b"grantline/record/v1\x00"
CHECKPOINT_DOMAIN = b"grantline/checkpoint/v1\x00"
CHAIN_DOMAIN = b"grantline/chain/v1\x00"
GENESIS = "sha256:" + "0" * 64
HASH_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")

# An Ed25519 signature is 64 bytes: 86 base64url characters without padding.
_SIG_SUFFIX = re.compile(rb',"sig":"([A-Za-z0-9_-]{86})"\}\Z')


def seal(body: Mapping[str, Any], signer: Signer, domain: bytes) -> bytes:
    """Add the signer's ``kid``, sign the canonical body under ``domain``, return the line.

    Raises :class:`IntegrityError` if the body already has ``sig`` or is not canonicalisable.
    """
    if "sig" in body:
        raise IntegrityError("a body to seal must not carry 'sig'", code="not_canonicalizable")
    signed = canonicalize({**body, "kid": signer.kid})
    signature = signer.sign(domain + signed)
    return b"".join((signed[:-1], b',"sig":"', b64url_encode(signature).encode("ascii"), b'"}'))


def split(line: bytes) -> tuple[bytes, bytes]:
    """The exact signed bytes and the raw signature of a line.

    Raises :class:`IntegrityError` (code ``malformed_line``) unless the line is ``{...}`` ending
    in ``,"sig":"<86 base64url characters>"}``.
    """
    match = _SIG_SUFFIX.search(line)
    if match is None or not line.startswith(b"{"):
        raise IntegrityError(
            'the line does not end with ,"sig":"<signature>"}', code="malformed_line"
        )
    signature = b64url_decode(match.group(1))
    return line[: match.start()] + b"}", signature


def chain_hash(line: bytes) -> str:
    """The chain hash of a full line (signature included): what the next record's ``prev`` holds."""
    return "sha256:" + hashlib.sha256(CHAIN_DOMAIN + line).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedLine:
    """A split and parsed line whose signature is not checked yet: trust nothing in ``body``."""

    signed: bytes
    signature: bytes
    body: dict[str, Any]
    has_duplicate_keys: bool


def read_line(line: bytes) -> SignedLine:
    """Split a line and parse its signed bytes, without verifying anything.

    Raises :class:`IntegrityError` (code ``malformed_line``) when the line has not the shape of
    a signed line or its signed bytes are not a JSON object.
    """
    signed, signature = split(line)
    body, duplicates = parse_json(signed)
    if not isinstance(body, dict):
        raise IntegrityError("the signed bytes are not a JSON object", code="malformed_line")
    return SignedLine(signed, signature, body, duplicates)


class VerifyingKey(Protocol):
    """What checks a signature: cryptography's Ed25519 key, or evidence/fast_keys.py's."""

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raises ``cryptography.exceptions.InvalidSignature`` when it does not verify."""
        ...


def check_signed(line: SignedLine, keys: Mapping[str, VerifyingKey], domain: bytes) -> None:
    """Verify the signature over the exact signed bytes, then that they are canonical.

    ``kid`` is read from the unverified body only to choose the key. Raises
    :class:`IntegrityError` with code ``unknown_kid``, ``bad_signature``, ``duplicate_key`` or
    ``not_canonical``, in that order of checking.
    """
    kid = line.body.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise IntegrityError(f"no trusted key has kid {kid!r}", code="unknown_kid")
    try:
        key.verify(line.signature, domain + line.signed)
    except InvalidSignature:
        raise IntegrityError(
            f"the signature does not verify with key {kid!r}", code="bad_signature"
        ) from None
    if line.has_duplicate_keys:
        raise IntegrityError("an object in the signed bytes repeats a key", code="duplicate_key")
    _check_canonical(line)
    if "sig" in line.body:
        raise IntegrityError("the signed bytes carry a 'sig' member", code="invalid_field")


def _check_canonical(line: SignedLine) -> None:
    try:
        canonical = canonicalize_parsed(line.body)
    except IntegrityError as exc:
        raise IntegrityError(
            f"the signed bytes are not canonical: {exc}", code="not_canonical"
        ) from exc
    if canonical != line.signed:
        raise IntegrityError(
            "the signed bytes are not in RFC 8785 canonical form", code="not_canonical"
        )
