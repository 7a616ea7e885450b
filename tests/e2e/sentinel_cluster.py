"""A Sentinel-managed Valkey for tests: a primary, a replica and three sentinels on loopback.

Each server has its own directory and config file (sentinels and promoted servers rewrite
theirs). The data nodes fsync every write to their AOF and share one password; the
sentinels require a second one, so the broker's sentinel credentials are exercised too.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from tests.conftest import free_port

from grantline import local_servers
from grantline.store.valkey import _binary

SERVICE = "grantline"
# Quick to declare a primary down and to give up on a failover: the test waits for both.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


@dataclass
class Server:
    """One valkey-server process (a data node or a sentinel) and its directory."""

    directory: Path
    port: int
    config: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "server.conf"
        if not conf.exists():  # a restart keeps what the server rewrote
            conf.write_text(self.config)
        sentinel = ["--sentinel"] if "sentinel monitor" in self.config else []
        with (self.directory / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(
                [str(_binary()), str(conf), *sentinel],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                preexec_fn=local_servers.die_with_parent,  # noqa: PLW1509 — prctl only
            )

    def kill(self) -> None:
        """SIGKILL: no AOF flush, no goodbye to replicas or sentinels."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        local_servers.stop(self.process)
        self.process = None

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _data_config(directory: Path, port: int, password: str, primary: int | None) -> str:
    lines = [
        "bind 127.0.0.1",
        f"port {port}",
        f"dir {directory}",
        f"requirepass {password}",
        f"masterauth {password}",
        "appendonly yes",
        "appendfsync always",
        'appenddirname "appendonly"',
        'save ""',
        "maxmemory-policy noeviction",
        "logfile server.log",
    ]
    if primary is not None:
        lines.append(f"replicaof 127.0.0.1 {primary}")
    return "\n".join(lines) + "\n"


def _sentinel_config(directory: Path, port: int, primary: int, password: str, own: str) -> str:
    return "\n".join(
        [
            "bind 127.0.0.1",
            f"port {port}",
            f"dir {directory}",
            "logfile server.log",
            f"requirepass {own}",
            f"sentinel sentinel-pass {own}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2",
            f"sentinel auth-pass {SERVICE} {password}",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {SERVICE} 1",
            "",
        ]
    )


@dataclass
class SentinelCluster:
    """Start with :meth:`start`; :meth:`stop` ends every process it started."""

    directory: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sentinel_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    data: dict[int, Server] = field(default_factory=dict)
    sentinels: list[Server] = field(default_factory=list)

    def start(self) -> None:
        primary, replica = free_port(), free_port()
        for port, follows in ((primary, None), (replica, primary)):
            where = self.directory / f"data-{port}"
            config = _data_config(where, port, self.password, follows)
            self.data[port] = Server(where, port, config)
            self.data[port].start()
        for _ in range(3):
            port = free_port()
            where = self.directory / f"sentinel-{port}"
            config = _sentinel_config(where, port, primary, self.password, self.sentinel_password)
            self.sentinels.append(Server(where, port, config))
            self.sentinels[-1].start()
        self._wait_formed(primary)

    def stop(self) -> None:
        for server in [*self.sentinels, *self.data.values()]:
            server.stop()

    @property
    def sentinel_list(self) -> str:
        """The value of ``GRANTLINE_REDIS_SENTINELS``."""
        return ",".join(f"127.0.0.1:{server.port}" for server in self.sentinels)

    def broker_env(self) -> dict[str, str]:
        return {
            "GRANTLINE_REDIS_SENTINELS": self.sentinel_list,
            "GRANTLINE_REDIS_SENTINEL_SERVICE": SERVICE,
            "GRANTLINE_REDIS_SENTINEL_PASSWORD": self.sentinel_password,
            "GRANTLINE_REDIS_URL": f"redis://:{self.password}@{SERVICE}/0",
        }

    def sentinel(self, index: int = 0) -> redis.Redis:
        port = self.sentinels[index].port
        return redis.Redis(port=port, password=self.sentinel_password, socket_timeout=2)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=2)

    def primary_port(self, index: int = 0) -> int:
        """The primary as sentinel ``index`` sees it."""
        with self.sentinel(index) as client:
            _host, port = client.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: promote the replica without waiting for agreement."""
        with self.sentinel() as client:
            client.sentinel_failover(SERVICE)

    def wait_promoted(self, old: int, timeout: float = 30) -> int:
        """The port of the new primary, once every sentinel names it and it says it is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = {self._primary_or_none(i) for i in range(len(self.sentinels))}
            if len(ports) == 1 and (port := ports.pop()) not in (None, old):
                assert port is not None
                if self._role(port) == "master":
                    return port
            time.sleep(0.1)
        raise AssertionError(f"no new primary in {timeout} s:\n{self.sentinels[0].log()[-3000:]}")

    def restart_as_replica(self, port: int, primary: int) -> None:
        """Start the stopped server on ``port`` again as a replica of ``primary``, as an
        orchestrator that asks the sentinels first would. (Left alone, the sentinels would
        demote it too, but only some 10 s after it comes back as a primary.)"""
        server = self.data[port]
        (server.directory / "server.conf").unlink()
        server.config = _data_config(server.directory, port, self.password, primary)
        server.start()

    def wait_in_sync(self, primary: int, timeout: float = 30) -> None:
        """Until ``primary`` has a replica that confirms writes in its AOF (after a full
        sync the replica rewrites its AOF and confirms nothing until that is done)."""
        deadline = time.monotonic() + timeout
        with self.node(primary) as client:
            while client.waitaof(0, 1, 200)[1] < 1:
                client.set("sentinel-cluster-probe", "1")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no replica of {primary} in sync in {timeout} s")
                time.sleep(0.1)
            client.delete("sentinel-cluster-probe")

    def _wait_formed(self, primary: int, timeout: float = 30) -> None:
        # Failover needs every sentinel to know the replica and the two other sentinels
        # (they find each other through hello messages, every 2 s).
        self.wait_in_sync(primary, timeout)
        deadline = time.monotonic() + timeout
        for index in range(len(self.sentinels)):
            while not self._sentinel_ready(index):
                if time.monotonic() > deadline:
                    raise AssertionError(f"sentinel {index} did not see the cluster in time")
                time.sleep(0.1)

    def _sentinel_ready(self, index: int) -> bool:
        try:
            with self.sentinel(index) as client:
                master = client.sentinel_master(SERVICE)
        except redis.RedisError:
            return False
        return (
            int(master["num-slaves"]) >= 1
            and int(master["num-other-sentinels"]) >= len(self.sentinels) - 1
        )

    def _primary_or_none(self, index: int) -> int | None:
        try:
            return self.primary_port(index)
        except (redis.RedisError, TypeError):
            return None

    def _role(self, port: int) -> str:
        try:
            with self.node(port) as client:
                return str(client.role()[0], "ascii")
        except redis.RedisError:
            return "down"
