"""Evidence bundles: a selection of records that proves itself without the rest of the log.

A bundle is JSON Lines. The first line is its header::

    {"bundle": "grantline/bundle/v1", "origin": ..., "selection": {...},
     "checkpoint": "<C2SP checkpoint note>", "keys": {"keys": [<log JWKs>]}}

then one line per selected record, in log order::

    {"seq": N, "proof": ["<base64>", ...], "line": "<the record's exact signed line>"}

and a last line ``{"end": true, "records": <count>, "policy_digests": [...]}``. Each record
verifies with its signature, and its inclusion proof ties it to the signed checkpoint: it is
record ``seq`` of the log that checkpoint describes, unchanged. The selection need not be
contiguous, so the hash chain is not checked, but nothing can be added to or altered in a
bundle without failing a proof.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.domain.errors import IntegrityError
from grantline.evidence.examine import RECORD, examine
from grantline.evidence.merkle import leaf_hash, verify_inclusion
from grantline.evidence.note import CheckpointNote, NoteKey, open_checkpoint
from grantline.evidence.signer import raw_public_bytes
from grantline.evidence.verify import Finding, VerifyReport

FORMAT = "grantline/bundle/v1"


def header(origin: str, selection: Mapping[str, str], note: str, jwks: Mapping[str, Any]) -> bytes:
    body = {
        "bundle": FORMAT,
        "origin": origin,
        "selection": dict(selection),
        "checkpoint": note,
        "keys": dict(jwks),
    }
    return json.dumps(body, sort_keys=True).encode("utf-8")


def entry(seq: int, proof: list[str], line: bytes) -> bytes:
    body = {"seq": seq, "proof": proof, "line": line.decode("utf-8")}
    return json.dumps(body, sort_keys=True).encode("utf-8")


def trailer(records: int, policy_digests: Iterable[str]) -> bytes:
    body = {"end": True, "records": records, "policy_digests": sorted(set(policy_digests))}
    return json.dumps(body, sort_keys=True).encode("utf-8")


def is_bundle(first_line: bytes) -> bool:
    try:
        body = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("bundle") == FORMAT


def verify_bundle(lines: Iterable[bytes], keys: Mapping[str, Ed25519PublicKey]) -> VerifyReport:
    """Verify a bundle against trusted log keys; never raises for anything in ``lines``."""
    checker = _BundleChecker(keys)
    for number, raw in enumerate(lines, start=1):
        checker.feed(number, raw)
    return checker.finish()


class _BundleChecker:
    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = keys
        self._note: CheckpointNote | None = None
        self._findings: list[Finding] = []
        self._records = 0
        self._last_seq = 0
        self._ended = False
        self._digests: set[str] = set()
        self._listed: set[str] | None = None

    def feed(self, number: int, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            self._flag("malformed_line", None, "not a JSON object", number)
            return
        if number == 1:
            self._open(body, number)
        elif self._ended:
            self._flag("after_end", None, "lines follow the bundle's end", number)
        elif isinstance(body, dict) and body.get("end") is True:
            self._end(body, number)
        else:
            self._entry(body, number)

    def finish(self) -> VerifyReport:
        if not self._ended:
            self._flag("bundle_incomplete", None, "the bundle has no end line: it was cut", None)
        elif self._listed is not None and not self._digests <= self._listed:
            missing = ", ".join(sorted(self._digests - self._listed))
            self._flag("policy_digest_unlisted", None, f"not in the bundle's list: {missing}", None)
        return VerifyReport(self._records, tuple(self._findings), None)

    def _open(self, body: Any, number: int) -> None:
        if not isinstance(body, dict) or body.get("bundle") != FORMAT:
            self._flag("not_a_bundle", None, f"the first line is not a {FORMAT} header", number)
            return
        note = body.get("checkpoint")
        origin = note.split("\n", 1)[0] if isinstance(note, str) else ""
        for key in self._keys.values():
            try:
                self._note = open_checkpoint(str(note), NoteKey(origin, raw_public_bytes(key)))
            except IntegrityError:
                continue
            return
        self._flag(
            "checkpoint_untrusted", None, "the checkpoint is not signed by a trusted log key", 1
        )

    def _entry(self, body: Any, number: int) -> None:
        seq = body.get("seq") if isinstance(body, dict) else None
        line = body.get("line") if isinstance(body, dict) else None
        proof = body.get("proof") if isinstance(body, dict) else None
        if not isinstance(seq, int) or not isinstance(line, str) or not isinstance(proof, list):
            self._flag("malformed_line", None, "an entry needs seq, line and proof", number)
            return
        self._records += 1
        raw = line.encode("utf-8")
        examined = examine(raw, self._keys)
        request_id = examined.request_id
        if examined.kind != RECORD or examined.code is not None:
            message = examined.message or "not a record"
            self._flag(examined.code or "malformed_line", seq, message, number, request_id)
            return
        if examined.seq != seq or seq <= self._last_seq:
            self._flag("out_of_order", seq, "seq repeats, goes back, or differs", number)
        self._last_seq = max(self._last_seq, seq)
        if self._note is not None and not self._included(raw, seq, proof):
            message = f"not record {seq} of the log the checkpoint of size {self._note.size} signs"
            self._flag("not_in_log", seq, message, number, request_id)
        digest = (examined.data or {}).get("policy_digest")
        if examined.event == "evaluated" and isinstance(digest, str):
            self._digests.add(digest)

    def _included(self, raw: bytes, seq: int, proof: list[Any]) -> bool:
        assert self._note is not None  # noqa: S101 — checked by the caller
        try:
            path = [base64.b64decode(h, validate=True) for h in proof]
        except (binascii.Error, TypeError, ValueError):
            return False
        return verify_inclusion(leaf_hash(raw), seq - 1, self._note.size, path, self._note.root)

    def _end(self, body: Mapping[str, Any], number: int) -> None:
        self._ended = True
        if body.get("records") != self._records:
            counted = body.get("records")
            message = f"the end line counts {counted} records, the bundle has {self._records}"
            self._flag("bundle_incomplete", None, message, number)
        listed = body.get("policy_digests")
        if isinstance(listed, list):
            self._listed = {d for d in listed if isinstance(d, str)}

    def _flag(
        self,
        code: str,
        seq: int | None,
        message: str,
        line: int | None,
        request_id: str | None = None,
    ) -> None:
        self._findings.append(Finding("integrity", code, seq, request_id, message, line))
