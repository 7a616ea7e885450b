"""Group commit of signed records: concurrent appends share one chained, signed, atomic write.

Each process keeps its view of the chain head. Pending record groups queue up while a write
is in flight; the next write seals all of them in order and appends them in one round trip
(one fsync on the server for many requests). When another replica moved the head first, the
compare-and-set fails, the batch is sealed again on the real head and retried.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from grantline.domain.errors import (
    DependencyUnavailableError,
    DutiesConflictError,
    IntegrityError,
)
from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.signer import Signer
from grantline.store.log import Effects, RedisLog, SealedEntry
from grantline.store.policy_archive import Keeping, PolicyArchive
from grantline.store.tree import RedisTree, checked_frontier, grow

_MAX_BATCH_RECORDS = 512
# Writers racing for the head: the one that lost takes the next turn (the append script's
# lease) and seals again at once; a writer refused while another has the turn pauses a
# little, the pause growing by 2 ms a try up to a cap. Without turns, two workers of one
# broker starved each other under load: the loser's batch grew while it lost, and so took
# longer to seal, and lost again (a p99 of 1.6 s at 32 callers).
_MAX_CAS_ATTEMPTS = 64
_BACKOFF_SECONDS = 0.002
_BACKOFF_CAP_SECONDS = 0.05
_JITTER = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class Draft:
    """A record before it has a place in the chain."""

    request_id: str
    event: str
    at: datetime
    data: Mapping[str, Any]
    effects: Effects = field(default_factory=Effects)


@dataclass(slots=True)
class _Pending:
    drafts: Sequence[Draft]
    done: asyncio.Future[list[bytes]]


@dataclass(frozen=True, slots=True)
class _Sealed:
    """``drafts`` sealed on ``head``: the entries to append and the head they lead to."""

    head: ChainHead
    drafts: Sequence[Draft]
    entries: list[SealedEntry]
    new_head: ChainHead


class Ledger:
    """Appends groups of drafts atomically; a group is never split across writes."""

    def __init__(
        self,
        log: RedisLog,
        signer: Signer,
        tree: RedisTree | None = None,
        archive: PolicyArchive | None = None,
    ) -> None:
        self._log = log
        self._signer = signer
        self._tree = tree or RedisTree(log.client)
        self._archive = archive
        self._head: ChainHead | None = None
        self._frontier: list[bytes] = []
        self._queue: deque[_Pending] = deque()
        self._writer: asyncio.Task[None] | None = None
        # Names this process to the append script, which gives a writer that lost the race
        # for the head the next turn.
        self._writer_id = secrets.token_hex(8)

    async def append(self, drafts: Sequence[Draft]) -> list[bytes]:
        """Seal and durably append ``drafts`` in order; return their signed lines.

        Raises:
            DependencyUnavailableError: the store did not confirm the write.
            DutiesConflictError: a record excluded a role its subject holds (nothing of
                ``drafts`` was written).
        """
        done: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(drafts, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take_batch()
            try:
                lines = await self._commit([d for p in batch for d in p.drafts])
            except DutiesConflictError as exc:
                self._refuse(batch, exc)
                continue
            except Exception as exc:
                self._head = None  # our view may be stale; read it again next time
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(_as_unavailable(exc))
                continue
            offset = 0
            for pending in batch:
                count = len(pending.drafts)
                if not pending.done.done():
                    pending.done.set_result(lines[offset : offset + count])
                offset += count

    def _refuse(self, batch: list[_Pending], exc: DutiesConflictError) -> None:
        """Separation of duties refused one request's group: it fails, and the groups of other
        requests that shared its write go again, first in line."""

        def named(pending: _Pending) -> bool:
            return any(d.request_id == exc.request_id for d in pending.drafts)

        refused = [p for p in batch if named(p)] or batch  # never retry a refusal for good
        for pending in refused:
            if not pending.done.done():
                pending.done.set_exception(exc)
        self._queue.extendleft(reversed([p for p in batch if p not in refused]))

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._queue and (
            not batch or size + len(self._queue[0].drafts) <= _MAX_BATCH_RECORDS
        ):
            pending = self._queue.popleft()
            batch.append(pending)
            size += len(pending.drafts)
        return batch

    async def _commit(self, drafts: Sequence[Draft]) -> list[bytes]:
        if self._head is None:
            self._head, self._frontier = await self._current()
        head, frontier = self._head, self._frontier
        drafts, keeping = self._keeping(drafts)
        batch_id = secrets.token_hex(16)
        sealed: _Sealed | None = None
        for attempt in range(_MAX_CAS_ATTEMPTS):
            sealed = await self._sealed(head, drafts, sealed)
            entries, new_head = sealed.entries, sealed.new_head
            grown = list(frontier)
            nodes = grow(head.seq, grown, [entry.line for entry in entries])
            outcome = await self._log.compare_and_append(
                head,
                new_head,
                entries,
                batch_id,
                nodes,
                kept_bundles=keeping.relied_on if keeping else (),
                writer=self._writer_id,
            )
            if outcome.applied:
                self._head, self._frontier = new_head, grown
                if self._archive is not None and keeping is not None:
                    self._archive.mark_kept(keeping.bundles)
                return [entry.line for entry in entries]
            if outcome.conflict is not None:
                raise DutiesConflictError(*outcome.conflict)
            if outcome.missing_bundle and self._archive is not None:
                # The store lost a bundle this process kept before: send it this time.
                self._archive.forget(outcome.missing_bundle)
                drafts, keeping = self._keeping(drafts)
                continue
            # Another writer appended first, or has the turn: seal again on the head and tree
            # it left. When it moved the head, this writer now has the turn and goes at once;
            # otherwise a short random pause while the writer with the turn appends.
            moved = outcome.head != head
            try:
                head, frontier = checked_frontier(outcome.head, outcome.tree_size, outcome.frontier)
            except IntegrityError:
                head, frontier = await self._current()
            if not moved:
                pause = min(_BACKOFF_SECONDS * (attempt + 1), _BACKOFF_CAP_SECONDS)
                await asyncio.sleep(_JITTER.uniform(0, pause))
        raise DependencyUnavailableError(
            "the log is under too much contention to append; try again", code="store_contention"
        )

    def _keeping(self, drafts: Sequence[Draft]) -> tuple[Sequence[Draft], Keeping | None]:
        """``drafts`` with what the archive adds to the inputs they keep: their retention, and
        each bundle this process has not kept yet. Without an archive nothing is kept: no
        one chose how long inputs should live."""
        inputs = [d.effects.keep_input for d in drafts if d.effects.keep_input is not None]
        if not inputs:
            return drafts, None
        keeping = self._archive.complete(inputs) if self._archive is not None else None
        completed = iter(keeping.inputs if keeping is not None else ())
        carried = dict(keeping.bundles) if keeping is not None else {}
        kept: list[Draft] = []
        for draft in drafts:
            if draft.effects.keep_input is None:
                kept.append(draft)
                continue
            done = next(completed, None)
            bundle = carried.pop(done.policy_digest, None) if done is not None else None
            effects = replace(draft.effects, keep_input=done, keep_bundle=bundle)
            kept.append(replace(draft, effects=effects))
        return kept, keeping

    async def _current(self) -> tuple[ChainHead, list[bytes]]:
        """The head and tree frontier; a tree left behind the log (written by a version
        without it) is built again from the log first."""
        try:
            return await self._tree.head_and_frontier()
        except IntegrityError:
            await self._tree.rebuild(self._log)
            return await self._tree.head_and_frontier()

    async def _sealed(
        self, head: ChainHead, drafts: Sequence[Draft], previous: _Sealed | None
    ) -> _Sealed:
        if previous is not None and previous.head == head and previous.drafts is drafts:
            # Refused while another writer had the turn, on the same head: the same records.
            return previous
        if self._signer.blocking:
            entries, new_head = await asyncio.to_thread(self._seal, head, drafts)
        else:
            entries, new_head = self._seal(head, drafts)
        return _Sealed(head, drafts, entries, new_head)

    def _seal(
        self, head: ChainHead, drafts: Sequence[Draft]
    ) -> tuple[list[SealedEntry], ChainHead]:
        entries: list[SealedEntry] = []
        for draft in drafts:
            line, head = seal_next(
                head,
                request_id=draft.request_id,
                event=draft.event,
                at=draft.at,
                data=draft.data,
                signer=self._signer,
            )
            entries.append(SealedEntry(head.seq, line, draft.request_id, draft.effects))
        return entries, head


def _as_unavailable(exc: Exception) -> Exception:
    if isinstance(exc, DependencyUnavailableError):
        return exc
    return DependencyUnavailableError(f"could not append to the log: {type(exc).__name__}")
