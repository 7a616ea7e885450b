"""docs/evidence-format.md stays true: its worked example and its minimal verifier are executed."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from evidence_support import HAPPY_PATH, RFC8032_SEED, SIGNER, export

from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.checkpoint import make_checkpoint
from grantline.evidence.record import split
from grantline.evidence.signer import LocalEd25519Signer, load_public_keys
from grantline.evidence.verify import verify_export

DOC = (Path(__file__).parents[3] / "docs" / "evidence-format.md").read_text(encoding="utf-8")


def _block(name: str) -> str:
    match = re.search(rf"<!-- example:{name} -->\n```[a-z]*\n(.*?)```", DOC, re.DOTALL)
    assert match is not None, f"no example:{name} block in the doc"
    return match.group(1)


def _example_lines() -> list[bytes]:
    signer = LocalEd25519Signer.from_seed(RFC8032_SEED)
    data = {
        "identity": {
            "subject": "spiffe://example.org/ci-runner",
            "issuer": "https://id.example.org",
            "claims_sha256": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
        },
        "request": {
            "target": "postgres://orders-db",
            "role": "db-read",
            "ttl_seconds": 600,
            "credential_type": "jwt",
            "purpose": "nightly export",
            "ticket": "CHG-1234",
            "agent": {},
        },
    }
    line, head = seal_next(
        ChainHead.genesis(),
        request_id="019ab0c4-2f5b-7c3e-8a1d-5e2f9b7c4d10",
        event="requested",
        at=datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC),
        data=data,
        signer=signer,
    )
    at = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    origin = "grantline.example.org/log"
    return [line, make_checkpoint(head, origin=origin, at=at, signer=signer)]


def _doc_verifier() -> Callable[[list[bytes], dict[str, Any]], int]:
    namespace: dict[str, Any] = {}
    # Running the documented code itself is the point: it must work as printed.
    exec(compile(_block("verifier"), "evidence-format.md", "exec"), namespace)  # noqa: S102
    verify: Callable[[list[bytes], dict[str, Any]], int] = namespace["verify"]
    return verify


def test_the_documented_export_is_exactly_what_the_code_writes() -> None:
    assert _block("export").encode().splitlines() == _example_lines()


def test_the_documented_signed_bytes_are_those_of_the_first_line() -> None:
    assert _block("signed").encode().strip() == split(_example_lines()[0])[0]


def test_the_documented_jwks_is_the_example_keys_jwks() -> None:
    assert json.loads(_block("jwks")) == {"keys": [SIGNER.public_jwk()]}


def test_every_value_quoted_in_the_worked_example_is_current() -> None:
    line, checkpoint = _example_lines()
    quoted = [
        split(line)[1].hex(),
        split(checkpoint)[1].hex(),
        json.loads(checkpoint)["head"],
        SIGNER.kid,
        SIGNER.public_jwk()["x"],
    ]
    for value in quoted:
        assert value in DOC


def test_grantlines_verifier_accepts_the_documented_export() -> None:
    keys = load_public_keys(json.loads(_block("jwks")))
    report = verify_export(_block("export").encode().splitlines(keepends=True), keys)
    assert report.ok, report.findings


def test_the_documented_minimal_verifier_accepts_the_example_and_longer_exports() -> None:
    verify = _doc_verifier()
    jwks = json.loads(_block("jwks"))
    assert verify(_block("export").encode().splitlines(keepends=True), jwks) == 1
    assert verify(export(), jwks) == len(HAPPY_PATH)


@pytest.mark.parametrize("damage", ["flip", "delete", "cut_tail", "no_checkpoint"])
def test_the_documented_minimal_verifier_refuses_damaged_exports(damage: str) -> None:
    verify = _doc_verifier()
    lines = export()
    if damage == "flip":
        lines[2] = lines[2].replace(b"db-read", b"db-reae")
    elif damage == "delete":
        del lines[2]
    elif damage == "cut_tail":
        del lines[-2]
    else:
        del lines[-1]
    with pytest.raises((ValueError, InvalidSignature)):
        verify(lines, json.loads(_block("jwks")))
