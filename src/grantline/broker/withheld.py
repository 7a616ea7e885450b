"""Credentials minted but never returned, because the store did not confirm their ``issued`` record.

The caller was answered 503 and holds nothing, yet the record may have landed after all: a
reply lost on the way back, an append a replica never confirmed before a failover, a command
still queued in a store that was paused. The log would then say a credential was issued that
nobody holds. The broker remembers such requests and, once the store answers again, revokes
each one whose ``issued`` record is there, with a reason that says so; when no record landed
within the watch window there is nothing to correct.

Kept in memory: a broker that dies meanwhile forgets them, and those grants then read as
issued until they expire.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

WITHHELD_BY = "grantline"
WITHHELD_SOURCE = "withheld"
WITHHELD_REASON = (
    "withheld: the store did not confirm the issued record in time, "
    "so the credential was never returned to the caller"
)
# A late append lands within seconds (the store's own queue); ten minutes is ample.
_WATCH = timedelta(minutes=10)
# Memory stays bounded through a long outage; the oldest is forgotten first, with a warning.
_MAX_WATCHED = 10_000


@dataclass(frozen=True, slots=True)
class Watched:
    request_id: str
    until: datetime


class Withheld:
    """Requests whose credential was withheld, each watched until settled or its window ends."""

    def __init__(self) -> None:
        self._watched: OrderedDict[str, Watched] = OrderedDict()

    def __len__(self) -> int:
        return len(self._watched)

    def add(self, request_id: str, now: datetime) -> None:
        self._watched[request_id] = Watched(request_id, now + _WATCH)
        while len(self._watched) > _MAX_WATCHED:
            forgotten, _ = self._watched.popitem(last=False)
            log.warning("too many withheld credentials to watch; forgetting %s", forgotten)

    def due(self) -> list[Watched]:
        return list(self._watched.values())

    def settle(self, request_id: str) -> None:
        self._watched.pop(request_id, None)
