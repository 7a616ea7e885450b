"""Evidence bundles: a filtered selection that verifies offline on its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import Served, cli, serve

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
ALICE = "user:alice"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    broker = serve(tmp_path / "home")
    with broker.client(CI) as client:
        for _ in range(3):
            body = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60}
            client.post("/v1/access-requests", json=body).raise_for_status()
    with broker.client(ALICE) as client:
        for _ in range(2):
            body = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60}
            client.post("/v1/access-requests", json=body).raise_for_status()
    yield broker
    broker.stop()


def bundle(served: Served, out: Path, *filters: str) -> list[dict[str, object]]:
    env = {**served.env, "GRANTLINE_TOKEN": served.token("user:auditor")}
    cli(env, "audit", "export", "--out", str(out), *filters)
    return [json.loads(line) for line in out.read_bytes().splitlines()]


def verify(served: Served, path: Path) -> tuple[int, str]:
    jwks = served.home / "jwks.json"
    jwks.write_text(httpx.get(f"{served.url}/.well-known/jwks.json").text)
    result = cli(served.env, "audit", "verify", str(path), "--jwks", str(jwks), check=False)
    return result.returncode, result.stdout + result.stderr


def test_a_bundle_of_one_subjects_records_verifies_offline(served: Served, tmp_path: Path) -> None:
    lines = bundle(served, tmp_path / "alice.bundle", "--subject", ALICE)
    head, entries, end = lines[0], lines[1:-1], lines[-1]
    assert head["selection"] == {"subject": ALICE}
    # The start-up policy_activated record, then 5 grants of 4 records.
    assert str(head["checkpoint"]).split("\n")[1] == "21"
    assert len(entries) == 8
    assert all(json.loads(str(e["line"]))["request_id"] for e in entries)
    subjects = {
        json.loads(str(e["line"]))["data"]["identity"]["subject"]
        for e in entries
        if json.loads(str(e["line"]))["event"] == "requested"
    }
    assert subjects == {ALICE}
    assert end["records"] == 8
    assert len(end["policy_digests"]) == 1  # type: ignore[arg-type]
    code, output = verify(served, tmp_path / "alice.bundle")
    assert code == 0, output
    assert "bundle of 8 records" in output


def test_issued_records_only_and_a_tampered_bundle(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "issued.bundle"
    lines = bundle(served, path, "--event", "issued")
    assert len(lines) == 2 + 5
    raw = path.read_bytes().splitlines()
    # Change a record but keep its proof: the signature, and the proof, no longer hold.
    raw[2] = raw[2].replace(b'\\"credential_type\\":\\"jwt\\"', b'\\"credential_type\\":\\"x509\\"')
    (tmp_path / "tampered.bundle").write_bytes(b"\n".join(raw) + b"\n")
    code, output = verify(served, tmp_path / "tampered.bundle")
    assert code == 2
    assert "bad_signature" in output
    # A record of another log position, moved: its proof does not hold for its new seq.
    moved = json.loads(raw[3])
    moved["seq"] += 1
    raw[3] = json.dumps(moved).encode()
    (tmp_path / "moved.bundle").write_bytes(b"\n".join(raw[:2] + raw[3:]) + b"\n")
    code, output = verify(served, tmp_path / "moved.bundle")
    assert code == 2
    assert "out_of_order" in output or "not_in_log" in output
    # Cut before its end line.
    (tmp_path / "cut.bundle").write_bytes(b"\n".join(raw[:-1]) + b"\n")
    code, output = verify(served, tmp_path / "cut.bundle")
    assert "bundle_incomplete" in output


def test_an_interrupted_bundle_resumes_against_the_same_checkpoint(
    served: Served, tmp_path: Path
) -> None:
    full = bundle(served, tmp_path / "full.bundle", "--role", "db-read")
    out = tmp_path / "resumed.bundle"
    partial = out.with_name(out.name + ".partial")
    raw = (tmp_path / "full.bundle").read_bytes().splitlines()
    # As if killed mid-way: header, five entries, and half of the sixth.
    partial.write_bytes(b"\n".join(raw[:6]) + b"\n" + raw[6][:40])
    with served.client(CI) as client:  # the log grows meanwhile
        body = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60}
        client.post("/v1/access-requests", json=body).raise_for_status()
    resumed = bundle(served, out, "--role", "db-read", "--resume")
    assert resumed == full
    assert not partial.exists()
    code, output = verify(served, out)
    assert code == 0, output
