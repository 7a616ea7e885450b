"""Servers the broker runs as its own children (the embedded Valkey, a dev OpenBao).

They listen on a free loopback port, die with the broker (Linux), and stop gracefully.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from grantline.domain.errors import ConfigError

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """A ``preexec_fn``: an orphaned server would hold its data and port after the broker died."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate ``process`` and wait, killing it if it hangs; nothing if it already ended."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=5)


def wait_ready(
    process: subprocess.Popen[bytes] | None,
    answers: Callable[[], bool],
    *,
    name: str,
    log_path: Path,
    timeout: float,
) -> bool:
    """Poll ``answers`` until it is true (True) or ``timeout`` passes (False).

    Raises :class:`ConfigError`, quoting the end of the server's log, when it exits first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ConfigError(f"{name} exited at start-up; its log says:\n{tail}")
        if answers():
            return True
        time.sleep(0.05)
    return False
