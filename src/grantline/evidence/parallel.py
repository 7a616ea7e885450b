"""Verify a large export on every core: lines are examined in worker processes (signature,
form, hashes), then taken in order by one process for the chain, Merkle and lineage checks.

Memory stays constant: the file is read in chunks, and only a bounded window of chunks is in
flight. Ed25519 verification is most of the cost, and it is what spreads over the cores.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.evidence.examine import Examined, examine
from grantline.evidence.fast_keys import fast
from grantline.evidence.note import CheckpointNote
from grantline.evidence.record import VerifyingKey
from grantline.evidence.signer import raw_public_bytes
from grantline.evidence.verify import Verifier, VerifyReport

CHUNK_BYTES = 1 << 20
_WINDOW_PER_WORKER = 4


def verify_file(
    path: Path,
    keys: Mapping[str, Ed25519PublicKey],
    against: CheckpointNote | None = None,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify the export in ``path`` with ``workers`` processes (default: every core);
    ``progress`` is called with the number of lines taken so far, now and then.

    Raises OSError when the file cannot be read.
    """
    verifier = Verifier(keys, against)
    count = 0
    for examined in _examined(path, keys, workers or os.cpu_count() or 1):
        verifier.accept(examined)
        count += 1
        if progress is not None and count % 10_000 == 0:
            progress(count)
    if progress is not None:
        progress(count)
    return verifier.finish()


def _examined(path: Path, keys: Mapping[str, Ed25519PublicKey], workers: int) -> Iterator[Examined]:
    if workers <= 1:
        checking = fast(keys)
        with path.open("rb") as handle:
            for line in handle:
                yield examine(line, checking)
        return
    raw = {kid: raw_public_bytes(key) for kid, key in keys.items()}
    # Workers read their own byte ranges of the file: only results cross between processes.
    with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(raw, str(path))) as pool:
        window: deque[Future[list[Examined]]] = deque()
        for span in _spans(path):
            window.append(pool.submit(_examine_span, span))
            if len(window) >= workers * _WINDOW_PER_WORKER:
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()


def _spans(path: Path) -> Iterator[tuple[int, int]]:
    """Byte ranges of the file, each holding whole lines, about CHUNK_BYTES long."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        start = 0
        while start < size:
            handle.seek(min(start + CHUNK_BYTES, size))
            handle.readline()  # to the end of the line the boundary fell in
            end = min(handle.tell(), size)
            yield start, end
            start = end


class _Worker:
    """What a worker process holds: the keys, and the export open for reading."""

    keys: Mapping[str, VerifyingKey] = {}
    file: BinaryIO | None = None


def _start_worker(raw: Mapping[str, bytes], path: str) -> None:
    keys = {kid: Ed25519PublicKey.from_public_bytes(key) for kid, key in raw.items()}
    _Worker.keys = fast(keys)
    _Worker.file = open(path, "rb")  # noqa: SIM115 — lives as long as the worker process


def _examine_span(span: tuple[int, int]) -> list[Examined]:
    start, end = span
    if _Worker.file is None:
        raise RuntimeError("the verify worker was not started")
    _Worker.file.seek(start)
    data = _Worker.file.read(end - start)
    # Lines as reading the file line by line gives them: split after each LF only, so that
    # CRLF endings and a stray CR are treated the same on one core and on many.
    pieces = data.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return [examine(line, _Worker.keys) for line in lines]
