"""Where the caller's identity token comes from: a file, an environment variable, a callable.

The client asks its source for the token before every call, so a rotated token is used as
soon as it appears. A Kubernetes projected service-account token is the usual file: the
kubelet replaces it (by swapping a symlink) well before it expires.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from grantline.client.errors import TokenUnavailableError

KUBERNETES_TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
MAX_TOKEN_BYTES = 16384


@runtime_checkable
class TokenSource(Protocol):
    """Gives the identity JWT to present as ``Authorization: Bearer``."""

    def token(self) -> str:
        """The current token. Raises :class:`TokenUnavailableError` when there is none."""
        ...


class StaticTokenSource:
    """One fixed token (tests, scripts, a token passed on the command line)."""

    def __init__(self, token: str) -> None:
        self._token = _checked(token, "the static token")

    def token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticTokenSource(<redacted>)"


class FileTokenSource:
    """A token file, read again whenever it changes (a projected service-account token).

    A change is seen by the file's inode, size and modification time (``os.stat`` follows
    the symlink Kubernetes swaps), so an unchanged file costs one ``stat`` per call.
    """

    def __init__(self, path: str | os.PathLike[str] = KUBERNETES_TOKEN_PATH) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int, int] | None = None
        self._token = ""

    def token(self) -> str:
        try:
            info = self.path.stat()
        except OSError as exc:
            raise TokenUnavailableError(f"cannot read the token file {self.path}: {exc}") from exc
        seen = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            if seen != self._seen:
                self._token = self._read()
                self._seen = seen
            return self._token

    def _read(self) -> str:
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            raise TokenUnavailableError(f"cannot read the token file {self.path}: {exc}") from exc
        if len(raw) > MAX_TOKEN_BYTES:
            raise TokenUnavailableError(
                f"the token file {self.path} is over {MAX_TOKEN_BYTES} bytes"
            )
        return _checked(raw.decode("utf-8", errors="replace"), f"the token file {self.path}")

    def __repr__(self) -> str:
        return f"FileTokenSource({str(self.path)!r})"


class EnvTokenSource:
    """A token in an environment variable, read at every call (``GRANTLINE_TOKEN`` by default)."""

    def __init__(self, name: str = "GRANTLINE_TOKEN") -> None:
        self.name = name

    def token(self) -> str:
        return _checked(os.environ.get(self.name, ""), f"the environment variable {self.name}")

    def __repr__(self) -> str:
        return f"EnvTokenSource({self.name!r})"


class CallableTokenSource:
    """A token from a function (a cloud metadata endpoint, a secrets manager...), called
    before every request: cache inside it if calling is expensive."""

    def __init__(self, function: Callable[[], str]) -> None:
        self._function = function

    def token(self) -> str:
        return _checked(self._function(), "the token callable")

    def __repr__(self) -> str:
        return f"CallableTokenSource({self._function!r})"


# What the client and verifiers accept as ``token=``.
TokenInput = TokenSource | Callable[[], str] | str


def token_source(source: TokenInput) -> TokenSource:
    """A :class:`TokenSource` from a source, a plain callable or a fixed token string."""
    if isinstance(source, str):
        return StaticTokenSource(source)
    if isinstance(source, TokenSource):
        return source
    if callable(source):
        return CallableTokenSource(source)
    raise TypeError(f"not a token source: {type(source).__name__}")


def _checked(token: object, where: str) -> str:
    if not isinstance(token, str):
        raise TokenUnavailableError(f"{where} gave a {type(token).__name__}, not a string")
    token = token.strip()
    if not token:
        raise TokenUnavailableError(f"{where} holds no token")
    # A header value with a line break would let a token split the request: refuse it.
    if any(char in token for char in "\r\n\x00 "):
        raise TokenUnavailableError(f"{where} holds a token with whitespace or control bytes")
    return token
