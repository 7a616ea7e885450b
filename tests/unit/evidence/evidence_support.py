"""Shared builders for the evidence tests: fixed keys, a small valid export, raw line crafting."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.evidence.canonical import b64url_encode
from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.checkpoint import make_checkpoint
from grantline.evidence.record import RECORD_DOMAIN
from grantline.evidence.signer import LocalEd25519Signer, load_public_keys

# RFC 8032 section 7.1, TEST 1: anyone can re-derive these keys and signatures.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
SIGNER = LocalEd25519Signer.from_seed(RFC8032_SEED)
OTHER_SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
KEYS: dict[str, Ed25519PublicKey] = load_public_keys({"keys": [SIGNER.public_jwk()]})
T0 = datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)
ORIGIN = "grantline.test/log"

REQUESTED: dict[str, Any] = {
    "identity": {"subject": "spiffe://example.org/ci-runner", "issuer": "dev", "claims_sha256": ""},
    "request": {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 600},
}
ALLOWED: dict[str, Any] = {
    "decision": {"allow": True, "reasons": [], "require_approval": False},
    "policy_digest": "sha256:" + "1" * 64,
    "input_digest": "sha256:" + "2" * 64,
}
DENIED_DECISION: dict[str, Any] = {**ALLOWED, "decision": {"allow": False, "reasons": ["no"]}}
ISSUED: dict[str, Any] = {
    "credential_type": "jwt",
    "fingerprint": "sha256:" + "3" * 64,
    "issued_at": "2026-11-23T10:00:00.123Z",
    "expires_at": "2026-11-23T10:10:00.123Z",
    "handle": {"jti": "jti-1"},
}
REVOKED: dict[str, Any] = {"by": "user:alice", "reason": "done"}

HAPPY_PATH: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("req-a", "requested", REQUESTED),
    ("req-a", "evaluated", ALLOWED),
    ("req-b", "requested", REQUESTED),
    ("req-a", "issued", ISSUED),
    ("req-b", "evaluated", DENIED_DECISION),
    ("req-b", "denied", {"reasons": ["no"]}),
    ("req-a", "revoked", REVOKED),
)


def records(
    events: tuple[tuple[str, str, Mapping[str, Any]], ...] = HAPPY_PATH,
    signer: LocalEd25519Signer = SIGNER,
) -> tuple[list[bytes], ChainHead]:
    """Seal ``events`` into a chain from genesis; return the lines and the head."""
    head = ChainHead.genesis()
    lines = []
    for index, (request_id, event, data) in enumerate(events):
        at = T0 + timedelta(seconds=index)
        line, head = seal_next(
            head, request_id=request_id, event=event, at=at, data=data, signer=signer
        )
        lines.append(line)
    return lines, head


def export(
    events: tuple[tuple[str, str, Mapping[str, Any]], ...] = HAPPY_PATH,
) -> list[bytes]:
    """A valid export of ``events``: the records, then a checkpoint over all of them."""
    lines, head = records(events)
    return [*lines, checkpoint_over(head)]


def checkpoint_over(head: ChainHead, signer: LocalEd25519Signer = SIGNER) -> bytes:
    return make_checkpoint(head, origin=ORIGIN, at=T0 + timedelta(hours=1), signer=signer)


def sign_raw(
    signed: bytes, domain: bytes = RECORD_DOMAIN, signer: LocalEd25519Signer = SIGNER
) -> bytes:
    """A line over arbitrary ``signed`` bytes, as a buggy or hostile holder of the key makes."""
    signature = b64url_encode(signer.sign(domain + signed)).encode()
    return signed[:-1] + b',"sig":"' + signature + b'"}'
