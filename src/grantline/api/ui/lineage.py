"""What the lineage page shows, gathered: the records, the summary, a checkpoint and proofs.

The records are read before the checkpoint is signed, so the checkpoint covers every one of
them; the inclusion proofs of those the page shows (at most ``FIRST_ROWS + LAST_ROWS``) then
come from one pipelined read of the tree.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

from grantline.api.ui.timeline import Checkpoint, LineagePage, lineage_page, row_of, shown_lines
from grantline.config import Runtime
from grantline.domain.errors import GrantlineError, NotFoundError
from grantline.domain.models import Identity

log = logging.getLogger(__name__)

NO_PROOFS = (
    "No checkpoint or inclusion proofs could be read just now: the records are shown, "
    "but their inclusion in the log cannot be checked. Reload the page to try again."
)


async def load(runtime: Runtime, caller: Identity, request_id: str) -> LineagePage:
    """The page of ``request_id`` as ``caller`` (an auditor) may see it.

    Raises:
        NotFoundError: the log holds no record of that request.
        ForbiddenError: the caller is not an auditor.
    """
    runtime.broker.require_auditor(caller, "open the auditor pages")
    lines, gap = shown_lines(await runtime.broker.lineage(caller, request_id))
    rows = [row_of(line) for line in lines]
    summary = await _summary(runtime, caller, request_id)
    seqs = [row.seq for row in rows if row.seq is not None]
    try:
        checkpoint, proofs = await _evidence(runtime, seqs)
    except GrantlineError as exc:
        # The timeline is still worth showing; only the proofs are missing.
        log.warning("lineage page without proofs: %s", exc.message)
        return lineage_page(
            request_id,
            rows,
            summary=summary,
            checkpoint=None,
            proofs={},
            notice=NO_PROOFS,
            gap=gap,
        )
    return lineage_page(
        request_id, rows, summary=summary, checkpoint=checkpoint, proofs=proofs, gap=gap
    )


async def _summary(runtime: Runtime, caller: Identity, request_id: str) -> dict[str, Any] | None:
    """The broker's summary; None for a request known only from records (a finding)."""
    try:
        return await runtime.broker.describe(caller, request_id)
    except NotFoundError:
        return None


async def _evidence(
    runtime: Runtime, seqs: Sequence[int]
) -> tuple[Checkpoint, dict[int, list[bytes]]]:
    """A checkpoint note signed now, and the proofs of the records it covers."""
    note = await runtime.checkpoints.note()
    size = int(note.split("\n", 2)[1])
    wanted = list(dict.fromkeys(seq for seq in seqs if 1 <= seq <= size))
    paths = await runtime.tree.inclusions([seq - 1 for seq in wanted], size) if wanted else []
    checkpoint = Checkpoint(base64.b64encode(note.encode("utf-8")).decode("ascii"), size)
    return checkpoint, dict(zip(wanted, paths, strict=True))
