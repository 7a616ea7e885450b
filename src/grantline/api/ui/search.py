"""The search over requests: newest first, by request id prefix, subject, role or target.

There is no index of requests by subject or role, so a page reads the log backwards in windows
of ``requested`` records and stops at ``PAGE_SIZE`` hits or after ``SCAN_BUDGET`` records: a
page load costs a bounded number of reads, and the cursor (``before``) says where the next
page goes on. A whole request id is looked up directly, however old the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from grantline.api.ui.display import lookup, text_of
from grantline.broker.selection import Selection
from grantline.config import Runtime
from grantline.domain.errors import NotFoundError
from grantline.domain.models import Event, Identity, Status

PAGE_SIZE = 25
WINDOW = 1000  # records read per round trip
SCAN_BUDGET = 5000  # records looked at per page load, at most
MAX_QUERY = 200
STATUSES = tuple(status.value for status in Status)
_STATE_FIELDS = ("status", "expires_at", "approval_deadline")
_WHOLE_ID = 36  # a UUID's length: a query this long may name one request


@dataclass(frozen=True, slots=True)
class Hit:
    """A request found, as its ``requested`` record and its status now describe it."""

    request_id: str
    seq: int
    at: str
    subject: str
    role: str
    target: str
    status: str = ""


@dataclass(frozen=True, slots=True)
class Results:
    hits: tuple[Hit, ...]
    next_before: int | None  # where the next page goes on; None when the log is exhausted
    oldest: int | None  # the oldest record looked at, for saying how far the page reached


class Requests(Protocol):
    """The log and request state, as the search reads them."""

    async def newest(self) -> int:
        """The seq of the newest record."""
        ...

    async def requested(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """The ``requested`` records among seqs ``after + 1`` to ``after + limit``."""
        ...

    async def statuses(self, request_ids: Sequence[str]) -> dict[str, str]:
        """The status now of each request the broker holds state of."""
        ...

    async def one(self, request_id: str) -> Hit | None:
        """The request of exactly this id, or None."""
        ...


def hit_of(seq: int, line: bytes) -> Hit:
    """A hit from a ``requested`` record (whom the credential is for, what was asked)."""
    body = json.loads(line)
    data = body.get("data")
    return Hit(
        request_id=text_of(body.get("request_id")),
        seq=seq,
        at=text_of(body.get("at")),
        subject=text_of(lookup(data, "identity.subject")),
        role=text_of(lookup(data, "request.role")),
        target=text_of(lookup(data, "request.target")),
    )


def matches(hit: Hit, query: str) -> bool:
    """Whether ``query`` starts the request id or appears in its subject, role or target.

    Case does not matter; an empty query matches everything.
    """
    wanted = query.strip().lower()
    if not wanted:
        return True
    if hit.request_id.lower().startswith(wanted):
        return True
    return any(wanted in field.lower() for field in (hit.subject, hit.role, hit.target))


async def search(
    requests: Requests, query: str, status: str = "", before: int | None = None
) -> Results:
    """One page of hits, newest first, from records older than ``before`` (None: the newest)."""
    if before is None and len(query.strip()) == _WHOLE_ID:
        exact = await requests.one(query.strip())
        if exact is not None and status in ("", exact.status):
            return Results((exact,), None, None)
    top = await requests.newest() if before is None else before - 1
    hits: list[Hit] = []
    low = top
    while low > 0 and top - low < SCAN_BUDGET:
        start = max(0, low - WINDOW)
        found = await _window(requests, start, low - start, query, status)
        for hit in found:
            if len(hits) == PAGE_SIZE:
                return Results(tuple(hits), hits[-1].seq, hits[-1].seq)
            hits.append(hit)
        low = start
    # Every record above ``low`` was looked at: the next page starts at ``low`` itself.
    return Results(tuple(hits), low + 1 if low > 0 else None, low + 1 if top > 0 else None)


async def _window(requests: Requests, after: int, limit: int, query: str, status: str) -> list[Hit]:
    """The hits among seqs ``after + 1`` to ``after + limit``, newest first."""
    rows = await requests.requested(after, limit)
    hits = [hit_of(seq, line) for seq, line in reversed(rows)]
    hits = [hit for hit in hits if matches(hit, query)]
    statuses = await requests.statuses([hit.request_id for hit in hits])
    return [
        Hit(**{**_fields(hit), "status": statuses.get(hit.request_id, "unknown")})
        for hit in hits
        if status in ("", statuses.get(hit.request_id, "unknown"))
    ]


def _fields(hit: Hit) -> dict[str, Any]:
    return {name: getattr(hit, name) for name in Hit.__slots__}


class BrokerRequests:
    """:class:`Requests` over a served broker, read as ``caller`` (who must be an auditor)."""

    def __init__(self, runtime: Runtime, caller: Identity) -> None:
        self._runtime = runtime
        self._caller = caller

    async def newest(self) -> int:
        return (await self._runtime.log.head()).seq

    async def requested(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        selection = Selection(event=Event.REQUESTED.value)
        rows, _ = await self._runtime.broker.records(self._caller, after, limit, selection)
        return rows

    async def statuses(self, request_ids: Sequence[str]) -> dict[str, str]:
        if not request_ids:
            return {}
        states = await self._runtime.grants.fields_of(request_ids, _STATE_FIELDS)
        return {rid: self._status(state) for rid, state in states.items() if state}

    async def one(self, request_id: str) -> Hit | None:
        try:
            summary = await self._runtime.broker.describe(self._caller, request_id)
        except NotFoundError:
            return None
        return _hit_from_summary(request_id, summary)

    def _status(self, state: Mapping[str, str]) -> str:
        return self._runtime.broker.effective_status(state)


def _hit_from_summary(request_id: str, summary: Mapping[str, Any]) -> Hit:
    return Hit(
        request_id=request_id,
        seq=0,
        at=text_of(summary.get("created_at")),
        subject=text_of(summary.get("subject")),
        role=text_of(summary.get("role")),
        target=text_of(summary.get("target")),
        status=text_of(summary.get("status")),
    )
