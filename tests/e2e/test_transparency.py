"""Checkpoints, inclusion and consistency proofs from a served broker, checked here with an
independent RFC 6962 / C2SP implementation, and `audit verify --against` a kept checkpoint."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tests.conftest import Served, cli, export, serve

from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.checkpoint import make_checkpoint
from grantline.evidence.merkle import leaf_hash, root_of
from grantline.evidence.record import chain_hash
from grantline.evidence.signer import LocalEd25519Signer

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
AUDITOR = "user:auditor"


# -- an independent check, written from RFC 9162 and c2sp.org/signed-note -------------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def independent_root(lines: list[bytes]) -> bytes:
    nodes = [_h(b"\x00" + line) for line in lines]

    def mth(items: list[bytes]) -> bytes:
        if len(items) == 1:
            return items[0]
        k = 1
        while k * 2 < len(items):
            k *= 2
        return _h(b"\x01" + mth(items[:k]) + mth(items[k:]))

    return mth(nodes)


def independent_inclusion(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """The root an audit path leads to (RFC 9162 2.1.3.2)."""
    fn, sn, r = index, size - 1, _h(b"\x00" + leaf)
    for p in path:
        if fn % 2 == 1 or fn == sn:
            r = _h(b"\x01" + p + r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            r = _h(b"\x01" + r + p)
        fn, sn = fn // 2, sn // 2
    assert sn == 0
    return r


def independent_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2, written out again for the test."""
    path = ([old_root] if m & (m - 1) == 0 else []) + proof
    fn, sn = m - 1, n - 1
    while fn % 2 == 1:
        fn, sn = fn // 2, sn // 2
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = _h(b"\x01" + c + fr), _h(b"\x01" + c + sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            sr = _h(b"\x01" + sr + c)
        fn, sn = fn // 2, sn // 2
    return fr == old_root and sr == new_root and sn == 0


def open_independently(note: str, vkey: str) -> tuple[str, int, bytes]:
    name, key_id_hex, material = vkey.strip().split("+", 2)
    raw = base64.b64decode(material)
    assert raw[0] == 1
    assert _h(name.encode() + b"\n" + raw)[:4].hex() == key_id_hex
    text, signatures = note.split("\n\n", 1)
    text += "\n"
    line = signatures.splitlines()[0]
    assert line.startswith(f"\u2014 {name} ")
    blob = base64.b64decode(line.split(" ")[2])
    assert blob[:4].hex() == key_id_hex
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], text.encode())
    origin, size, root = text.splitlines()[:3]
    return origin, int(size), base64.b64decode(root)


@pytest.fixture
def served(tmp_path: Path, redis_url: str) -> Iterator[Served]:
    broker = serve(tmp_path / "home", redis_url=redis_url)
    yield broker
    broker.stop()


def grant(served: Served, n: int) -> None:
    with served.client(CI) as client:
        for _ in range(n):
            body = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60}
            assert client.post("/v1/access-requests", json=body).status_code == 201


def records(served: Served) -> list[bytes]:
    with served.client(AUDITOR) as client:
        response = client.get(
            "/v1/records", params={"limit": 5000}, headers={"Accept": "application/x-ndjson"}
        )
    return response.content.splitlines()


def test_a_checkpoint_note_and_its_proofs_verify_independently(served: Served) -> None:
    grant(served, 5)  # 20 records after the start-up policy_activated record
    vkey = httpx.get(f"{served.url}/.well-known/grantline-log-key").text
    with served.client(AUDITOR) as client:
        early = client.get("/v1/checkpoint")
        assert early.headers["content-type"].startswith("text/plain")
        origin, size, root = open_independently(early.text, vkey)
        assert origin == f"127.0.0.1:{served.url.rsplit(':', 1)[1]}/grantline"
        lines = records(served)
        assert size == len(lines) == 21
        assert root == independent_root(lines)

        for seq in (1, 7, 21):
            proof = client.get(f"/v1/records/{seq}/proof", params={"tree_size": 21}).json()
            assert proof["leaf_index"] == seq - 1
            assert proof["tree_size"] == 21
            path = [base64.b64decode(h) for h in proof["hashes"]]
            assert independent_inclusion(lines[seq - 1], seq - 1, 21, path) == root

        grant(served, 3)
        later = client.get("/v1/checkpoint").text
        _, new_size, new_root = open_independently(later, vkey)
        assert new_size == 33
        assert new_root == independent_root(records(served))
        proof = client.get("/v1/checkpoints/consistency", params={"from": 21, "to": 33}).json()
        assert proof["from"] == 21 and proof["to"] == 33
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        assert independent_consistency(21, 33, root, new_root, hashes)
        assert not independent_consistency(21, 33, _h(b"other"), new_root, hashes)

        assert client.get("/v1/records/34/proof").status_code == 422
        assert (
            client.get("/v1/checkpoints/consistency", params={"from": 9, "to": 3}).status_code
            == 422
        )
    with served.client(CI) as client:
        assert client.get("/v1/checkpoint").status_code == 403


def test_verify_against_a_kept_checkpoint_catches_rewritten_history(
    served: Served, tmp_path: Path, redis_url: str
) -> None:
    grant(served, 4)
    with served.client(AUDITOR) as client:
        kept = tmp_path / "kept.checkpoint"
        kept.write_text(client.get("/v1/checkpoint").text)
    grant(served, 2)
    jwks = served.home / "jwks.json"
    jwks.write_text(httpx.get(f"{served.url}/.well-known/jwks.json").text)
    export(served, tmp_path / "export.jsonl")
    result = cli(
        served.env,
        "audit",
        "verify",
        str(tmp_path / "export.jsonl"),
        "--jwks",
        str(jwks),
        "--against",
        str(kept),
    )
    assert "OK" in result.stdout

    # Someone with the store and the key rewrites record 3 and re-chains everything after
    # it: signatures and chain verify again, but the kept checkpoint does not match.
    lines = (tmp_path / "export.jsonl").read_bytes().splitlines()
    forged = rewrite(lines, served.home, index=2)
    (tmp_path / "forged.jsonl").write_bytes(b"\n".join(forged) + b"\n")
    plain = cli(served.env, "audit", "verify", str(tmp_path / "forged.jsonl"), "--jwks", str(jwks))
    assert plain.returncode == 0, plain.stdout  # without the kept checkpoint it looks fine
    caught = cli(
        served.env,
        "audit",
        "verify",
        str(tmp_path / "forged.jsonl"),
        "--jwks",
        str(jwks),
        "--against",
        str(kept),
        check=False,
    )
    assert caught.returncode == 2
    assert "history_rewritten" in caught.stdout


def rewrite(lines: list[bytes], home: Path, index: int) -> list[bytes]:
    """Re-sign the export from ``index`` on with the broker's own log key (an insider)."""
    signer = LocalEd25519Signer.load_or_create(home / "keys" / "log-signing.pem")
    records_only = [line for line in lines if b'"event":"checkpoint"' not in line]
    out = records_only[:index]
    head = ChainHead(index, chain_hash(out[-1]))
    for line in records_only[index:]:
        body = json.loads(line)
        data = body["data"]
        if len(out) == index:
            data = {**data, "purpose": "rewritten"}
        new, head = seal_next(
            head,
            request_id=body["request_id"],
            event=body["event"],
            at=datetime.fromisoformat(body["at"].replace("Z", "+00:00")),
            data=data,
            signer=signer,
        )
        out.append(new)
    root = root_of([leaf_hash(line) for line in out])
    origin = json.loads(lines[-1])["origin"]
    checkpoint = make_checkpoint(
        head,
        origin=origin,
        at=datetime.fromisoformat("2026-11-24T00:00:00+00:00"),
        signer=signer,
        root=root,
    )
    return [*out, checkpoint]
