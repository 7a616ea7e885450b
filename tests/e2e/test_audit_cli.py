"""The CLI against a served broker: request, export, verify, tampering, replicas, restarts."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.conftest import Served, cli, export, serve, verify

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
AUDITOR = "user:auditor"


def request_cli(served: Served, *args: str) -> dict[str, object]:
    env = {**served.env, "GRANTLINE_TOKEN": served.token(CI)}
    result = cli(
        env, "request", "--target", "postgres://orders-db", "--role", "db-read", *args, check=False
    )
    return {"code": result.returncode, **json.loads(result.stdout)}


@pytest.fixture
def exported(broker: Served, tmp_path: Path) -> list[bytes]:
    issued = request_cli(broker, "--ttl", "600")
    assert issued["code"] == 0 and issued["status"] == "issued"
    assert request_cli(broker, "--ttl", "99999")["code"] == 1  # denied: over the cap
    for _ in range(3):
        request_cli(broker, "--ttl", "60")
    return export(broker, tmp_path / "export.jsonl")


def test_request_cli_exit_codes_follow_the_outcome(broker: Served) -> None:
    assert request_cli(broker, "--ttl", "60")["code"] == 0
    denied = request_cli(broker, "--ttl", "7200")
    assert denied["code"] == 1
    assert denied["status"] == "denied"


def test_export_ends_with_a_checkpoint_and_verifies(
    broker: Served, exported: list[bytes], tmp_path: Path
) -> None:
    last = json.loads(exported[-1])
    assert last["event"] == "checkpoint"
    assert last["size"] == len(exported) - 1
    code, output = verify(broker, tmp_path / "export.jsonl")
    assert code == 0, output
    assert "OK" in output


def _tampered(lines: list[bytes], tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _flip_byte(lines: list[bytes]) -> list[bytes]:
    changed = list(lines)
    changed[2] = changed[2].replace(b'"db-read"', b'"db-reae"', 1)
    if changed[2] == lines[2]:
        changed[2] = changed[2].replace(b'"at":"2', b'"at":"3', 1)
    return changed


TAMPERING = {
    "changed-byte": _flip_byte,
    "deleted-line": lambda lines: lines[:3] + lines[4:],
    "inserted-line": lambda lines: [*lines[:3], lines[1], *lines[3:]],
    "reordered-lines": lambda lines: [lines[0], lines[2], lines[1], *lines[3:]],
    "cut-tail": lambda lines: lines[:-3] + lines[-1:],
    "no-checkpoint": lambda lines: lines[:-1],
}


# What an auditor reads first: the kind of damage and the first seq it touches.
FIRST_FINDING = {
    "changed-byte": "integrity: bad_signature at seq 3",
    "deleted-line": "integrity: seq_gap at seq 4",
    "inserted-line": "integrity: seq_gap at seq 4",
    "reordered-lines": "integrity: seq_gap at seq 2",
    "cut-tail": "integrity: truncated",
    "no-checkpoint": "integrity: checkpoint_missing",
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_audit_verify_catches_tampering(
    broker: Served, exported: list[bytes], tmp_path: Path, name: str
) -> None:
    path = _tampered(TAMPERING[name](exported), tmp_path, name)
    code, output = verify(broker, path)
    assert code == 2, output
    assert "FAILED" in output
    assert output.splitlines()[0].startswith(FIRST_FINDING[name]), output


def test_two_brokers_on_one_store_keep_one_chain(tmp_path: Path, redis_url: str) -> None:
    home = tmp_path / "shared-home"
    first = serve(home, redis_url=redis_url)
    second = serve(home, redis_url=redis_url)
    try:

        def burst(served: Served) -> list[int]:
            with served.client(CI) as client:
                return [
                    client.post(
                        "/v1/access-requests",
                        json={
                            "target": "postgres://orders-db",
                            "role": "db-read",
                            "ttl_seconds": 60,
                        },
                    ).status_code
                    for _ in range(25)
                ]

        with ThreadPoolExecutor(4) as pool:
            statuses = [s for r in pool.map(burst, [first, second, first, second]) for s in r]
        assert statuses == [201] * 100
        lines = export(first, tmp_path / "both.jsonl")
        # requested, evaluated, approved, issued each, after each broker's policy_activated
        assert json.loads(lines[-1])["size"] == 402
        code, output = verify(first, tmp_path / "both.jsonl")
        assert code == 0, output
    finally:
        first.stop()
        second.stop()


def test_restart_keeps_the_log_the_keys_and_revocations(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stable = {"GRANTLINE_PUBLIC_URL": "https://grantline.example"}
    served = serve(home, extra_env=stable)
    kept = request_cli(served, "--ttl", "600")
    issued = request_cli(served, "--ttl", "600")
    token = issued["credential"]["token"]  # type: ignore[index]
    with served.client(CI) as client:
        client.post(f"/v1/access-requests/{issued['request_id']}/revoke", json={"reason": "x"})
    jwks_before = httpx.get(f"{served.url}/.well-known/jwks.json").json()
    served.stop()

    again = serve(home, extra_env=stable)
    try:
        assert httpx.get(f"{again.url}/.well-known/jwks.json").json() == jwks_before
        with again.client(CI) as client:
            assert client.post("/v1/introspect", json={"token": token}).json() == {"active": False}
            still = client.post("/v1/introspect", json={"token": kept["credential"]["token"]})  # type: ignore[index]
            assert still.json()["active"] is True
        lines = export(again, tmp_path / "after-restart.jsonl")
        # two grants of four records each, a revocation, and a policy_activated per start
        assert json.loads(lines[-1])["size"] == 11
        assert verify(again, tmp_path / "after-restart.jsonl")[0] == 0
    finally:
        again.stop()
