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
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grantline.domain.errors import IntegrityError
from grantline.store import keys
from grantline.store.connection import unavailable

log = logging.getLogger(__name__)

# Redis answers an MGET of this many keys in well under a millisecond.
MAX_INPUTS_PER_READ = 500


@dataclass(frozen=True, slots=True)
class KeptInput:
    """The packed canonical input of one decision, to keep under its digest for ``ttl_ms``
    (0: for good). Packed once, when the record is drafted: an append may be tried again."""

    digest: str
    value: str
    policy_digest: str
    ttl_ms: int = 0

    def encode(self) -> dict[str, Any]:
        # A string: some Redis versions hand a Lua number on in exponent form.
        return {"digest": self.digest, "value": self.value, "ttl_ms": str(self.ttl_ms)}


@dataclass(frozen=True, slots=True)
class KeptBundle:
    """The packed files of one policy bundle, to keep under its digest."""

    digest: str
    value: str

    def encode(self) -> dict[str, Any]:
        return {"digest": self.digest, "value": self.value}


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


@dataclass(frozen=True, slots=True)
class Keeping:
    """What one append keeps: its inputs with their retention, the bundles it carries, and
    the bundles it names without carrying, which the store must already hold."""

    inputs: list[KeptInput]
    bundles: dict[str, KeptBundle]
    relied_on: list[str]


class PolicyArchive:
    """Completes the keeping that drafts ask for, on the writing side of the ledger.

    A record that keeps an input gets the retention. The first append in this process to
    name a policy bundle carries the bundle's files (``files_of`` asks the engine); later
    ones rely on it, and the append script refuses them if the store lost it, so that the
    ledger sends it again (:meth:`forget`). No decision is recorded without its bundle,
    unless the engine no longer holds that bundle's files, which is logged.
    """

    def __init__(
        self, files_of: Callable[[str], Mapping[str, bytes] | None], retention_seconds: int
    ) -> None:
        self._files_of = files_of
        self._ttl_ms = max(0, retention_seconds) * 1000
        self._kept: set[str] = set()
        self._unheld: set[str] = set()

    def complete(self, inputs: Sequence[KeptInput]) -> Keeping:
        bundles: dict[str, KeptBundle] = {}
        relied_on: set[str] = set()
        for digest in dict.fromkeys(k.policy_digest for k in inputs):
            if digest in self._kept:
                relied_on.add(digest)
                continue
            files = self._files_of(digest)
            if files is None:
                # Once per digest: an OPA server's bundles are never held here at all.
                if digest not in self._unheld:
                    self._unheld.add(digest)
                    log.warning("policy bundle %s is not held; decisions name it unkept", digest)
                continue
            bundles[digest] = KeptBundle(digest, pack_files(files))
        completed = [KeptInput(k.digest, k.value, k.policy_digest, self._ttl_ms) for k in inputs]
        return Keeping(completed, bundles, sorted(relied_on))

    def mark_kept(self, digests: Iterable[str]) -> None:
        self._kept.update(digests)

    def forget(self, digest: str) -> None:
        """The store does not hold ``digest`` after all: send it with the next append."""
        self._kept.discard(digest)


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

    async def inputs(self, digests: Sequence[str]) -> tuple[dict[str, bytes], list[str]]:
        """The canonical inputs kept under ``digests`` (at most MAX_INPUTS_PER_READ), and the
        digests whose kept value is unreadable. Those no longer kept (past the retention, or
        never kept) are in neither."""
        if not digests:
            return {}, []
        try:
            values = await self._client.mget([keys.policy_input(d) for d in digests])
        except RedisError as exc:
            raise unavailable(exc, "the policy archive") from exc
        found: dict[str, bytes] = {}
        unreadable: list[str] = []
        for digest, value in zip(digests, values, strict=True):
            if value is None:
                continue
            try:
                found[digest] = unpack(value)
            except IntegrityError:
                unreadable.append(digest)
        return found, unreadable
