"""Policy bundles and decision inputs kept by digest, so that a recorded decision can be replayed.

The log keeps only digests: an input may hold a caller's claims, which are personal data, and
the bundle is large. The store keeps the content beside the log, written by the same atomic
append as the record that names it (``log.py``), so no decision is on record whose input was
not kept with it. Inputs expire after the retention the operator chose; bundles are kept for
good (one per policy change).

Values are packed: zlib-compressed, then base64 so that they pass through the append script's
JSON intact. The reader returns them unpacked and unchecked: the replayer checks each against
its digest, so a store that returns wrong content is caught where it matters.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.domain.errors import IntegrityError
from grantline.store import keys
from grantline.store.connection import unavailable

# Redis answers an MGET of this many keys in well under a millisecond.
MAX_INPUTS_PER_READ = 500


@dataclass(frozen=True, slots=True)
class KeptInput:
    """The canonical input of one decision, to keep under its digest for ``ttl_ms`` (0: ever)."""

    digest: str
    canonical: bytes
    policy_digest: str
    ttl_ms: int = 0

    def encode(self) -> dict[str, Any]:
        return {"digest": self.digest, "value": pack(self.canonical), "ttl_ms": self.ttl_ms}


@dataclass(frozen=True, slots=True)
class KeptBundle:
    """The files of one policy bundle, to keep under its digest."""

    digest: str
    files: Mapping[str, bytes]

    def encode(self) -> dict[str, Any]:
        return {"digest": self.digest, "value": pack_files(self.files)}


def pack(content: bytes) -> str:
    return base64.b64encode(zlib.compress(content, 6)).decode("ascii")


def unpack(value: bytes | str) -> bytes:
    """Raises :class:`IntegrityError` when ``value`` is not something :func:`pack` wrote."""
    try:
        return zlib.decompress(base64.b64decode(value, validate=True))
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise IntegrityError(f"a kept policy value is unreadable: {exc}") from exc


def pack_files(files: Mapping[str, bytes]) -> str:
    encoded = {path: base64.b64encode(content).decode("ascii") for path, content in files.items()}
    return pack(json.dumps({"files": encoded}, sort_keys=True).encode("utf-8"))


def unpack_files(value: bytes | str) -> dict[str, bytes]:
    """Raises :class:`IntegrityError` when ``value`` is not something :func:`pack_files` wrote."""
    try:
        files = json.loads(unpack(value))["files"]
        return {
            str(path): base64.b64decode(content, validate=True) for path, content in files.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise IntegrityError(f"a kept policy bundle is unreadable: {exc}") from exc


class PolicyArchive:
    """Completes the keeping that drafts ask for, on the writing side of the ledger.

    A record that keeps an input gets the retention, and the first record in this process to
    name a policy bundle carries that bundle's files too (``files_of`` asks the engine).
    Another replica may have kept the same bundle already: the script writes it only once.
    """

    def __init__(
        self, files_of: Callable[[str], Mapping[str, bytes] | None], retention_seconds: int
    ) -> None:
        self._files_of = files_of
        self._ttl_ms = max(0, retention_seconds) * 1000
        self._kept: set[str] = set()

    def complete(
        self, inputs: Sequence[KeptInput]
    ) -> tuple[list[KeptInput], dict[str, KeptBundle]]:
        """``inputs`` with their retention, and the bundles not yet kept that they name."""
        bundles: dict[str, KeptBundle] = {}
        for kept in inputs:
            digest = kept.policy_digest
            if digest in self._kept or digest in bundles:
                continue
            files = self._files_of(digest)
            if files is not None:
                bundles[digest] = KeptBundle(digest, files)
        completed = [
            KeptInput(k.digest, k.canonical, k.policy_digest, self._ttl_ms) for k in inputs
        ]
        return completed, bundles

    def mark_kept(self, digests: Sequence[str]) -> None:
        self._kept.update(digests)


class PolicyArchiveReader:
    """Reads what :class:`PolicyArchive` kept. Raises DependencyUnavailableError when the
    store cannot answer, :class:`IntegrityError` when a value is unreadable."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def bundle(self, digest: str) -> dict[str, bytes] | None:
        """The files of bundle ``digest``, or None when it was never kept."""
        try:
            value = await self._client.hget(keys.POLICY_BUNDLES, digest)
        except RedisError as exc:
            raise unavailable(exc, "the policy archive") from exc
        return unpack_files(value) if value is not None else None

    async def inputs(self, digests: Sequence[str]) -> dict[str, bytes]:
        """The canonical inputs kept under ``digests`` (at most MAX_INPUTS_PER_READ); those no
        longer kept (past the retention, or never kept) are absent."""
        if not digests:
            return {}
        try:
            values = await self._client.mget([keys.policy_input(d) for d in digests])
        except RedisError as exc:
            raise unavailable(exc, "the policy archive") from exc
        return {d: unpack(v) for d, v in zip(digests, values, strict=True) if v is not None}
