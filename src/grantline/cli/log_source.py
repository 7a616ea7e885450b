"""Where the audit commands get the log and the keys they trust: a broker, or local files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from grantline.cli.http import raise_for, send
from grantline.config import Settings, log_signer
from grantline.domain.errors import ConfigError, DependencyUnavailableError

_PAGE = 2000


def checkpoint_line(client: httpx.Client) -> bytes:
    """The newest checkpoint as the JSON line an export ends with."""
    response = send(client, "GET", "/v1/checkpoint", params={"format": "json"})
    raise_for(response)
    return response.content.rstrip(b"\n")


def record_lines(client: httpx.Client, size: int) -> Iterator[bytes]:
    """The exact signed lines of records 1..``size``, oldest first, paged."""
    after = 0
    while after < size:
        response = send(
            client,
            "GET",
            "/v1/records",
            params={"after": after, "limit": min(_PAGE, size - after)},
            headers={"Accept": "application/x-ndjson"},
        )
        raise_for(response)
        lines = response.content.splitlines()
        if not lines:
            raise DependencyUnavailableError(f"the log ended at seq {after}, before {size}")
        yield from lines
        after = int(response.headers["X-Next-After"])


def first_line(path: Path) -> bytes:
    """The first line of ``path`` (to tell a bundle from an export). Raises ConfigError."""
    try:
        with path.open("rb") as handle:
            return handle.readline()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def trusted_keys(source: str | None) -> dict[str, Any]:
    """The JWKS at ``source`` (a file or URL), else the log key in $GRANTLINE_HOME.

    Raises ConfigError when neither can be read.
    """
    if source is None:
        settings = Settings()
        if not (settings.keys_dir / "log-signing.pem").exists():
            raise ConfigError(
                f"no --jwks given and no log key in {settings.keys_dir}; pass the broker's "
                "/.well-known/jwks.json (file or URL)"
            )
        return {"keys": [log_signer(settings).public_jwk()]}
    try:
        if source.startswith(("http://", "https://")):
            response = httpx.get(source, timeout=10)
            response.raise_for_status()
            return dict(response.json())
        return dict(json.loads(Path(source).read_text()))
    except (httpx.HTTPError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot read trusted keys from {source}: {exc}") from exc
