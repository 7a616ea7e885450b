"""Approved credentials waiting for their requester: sealed with AES-GCM, taken once.

A credential issued when a quorum of approvers is met cannot be handed to the requester on
the spot, so it waits in the store until collected or expired. It waits encrypted under a key
in the broker's home (shared by replicas, like the signing keys), bound to its request id, so
that a store dump or replica never shows a usable credential and a sealed value cannot be
moved to another request.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import RedisError

from grantline.domain.errors import ConfigError, IntegrityError
from grantline.store import keys
from grantline.store.connection import unavailable

_KEY_BYTES = 32
_NONCE_BYTES = 12
_DOMAIN = b"grantline/pickup/v1\x00"


class PickupBox:
    """Seals and opens waiting credentials; the key never leaves this object."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ConfigError(f"the pickup key must be {_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> PickupBox:
        """The key in ``path``, created (mode 0600) on first use. Raises ConfigError."""
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(AESGCM.generate_key(bit_length=_KEY_BYTES * 8))
            return cls(path.read_bytes())
        except FileExistsError:
            # Another replica created it between our check and our open.
            return cls(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read or create the pickup key {path}: {exc}") from exc

    def seal(self, request_id: str, secret: Mapping[str, Any]) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(dict(secret), sort_keys=True).encode("utf-8")
        sealed = self._aead.encrypt(nonce, plain, _DOMAIN + request_id.encode("utf-8"))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, request_id: str, sealed: str | bytes) -> dict[str, Any]:
        """Raises IntegrityError when the value was not sealed for this request with our key."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            plain = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _DOMAIN + request_id.encode("utf-8")
            )
        except (InvalidTag, ValueError) as exc:
            raise IntegrityError(
                f"the waiting credential of {request_id} does not open with this broker's key"
            ) from exc
        opened: dict[str, Any] = json.loads(plain)
        return opened


class PickupStore:
    """Reads a waiting credential; it leaves the store with the ``collected`` record (or
    the end of its grant), in the log's atomic append."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def peek(self, request_id: str) -> bytes | None:
        try:
            sealed: bytes | str | None = await self._client.get(keys.pickup(request_id))
        except RedisError as exc:
            raise unavailable(exc, "the state store") from exc
        if sealed is None:
            return None
        return sealed.encode("ascii") if isinstance(sealed, str) else bytes(sealed)
