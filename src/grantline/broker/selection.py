"""Which records an auditor asked for: by time, request, event, or who and what they concern.

Subject, role and target are the request's (from its state), so every record of a request
is selected with its ``requested`` record, including later ones (revocation, expiry).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol


class RequestFields(Protocol):
    async def fields_of(
        self, request_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, str]]: ...


@dataclass(frozen=True, slots=True)
class Selection:
    since: str | None = None  # RFC 3339 UTC as records write it: compared as text
    until: str | None = None
    request_id: str | None = None
    event: str | None = None
    subject: str | None = None
    role: str | None = None
    target: str | None = None

    @property
    def everything(self) -> bool:
        return not any(asdict(self).values())

    def by_request(self) -> dict[str, str]:
        wanted = {"subject": self.subject, "role": self.role, "target": self.target}
        return {name: value for name, value in wanted.items() if value is not None}

    def as_dict(self) -> dict[str, str]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    async def select(
        self, rows: Sequence[tuple[int, bytes]], requests: RequestFields
    ) -> list[tuple[int, bytes]]:
        """The rows this selection keeps, in order."""
        if self.everything:
            return list(rows)
        kept = [(seq, line, json.loads(line)) for seq, line in rows]
        kept = [row for row in kept if self._keeps(row[2])]
        wanted = self.by_request()
        if wanted:
            ids = sorted({body["request_id"] for _, _, body in kept})
            found = await requests.fields_of(ids, list(wanted))
            kept = [row for row in kept if _matches(found.get(row[2]["request_id"], {}), wanted)]
        return [(seq, line) for seq, line, _ in kept]

    def _keeps(self, body: Mapping[str, object]) -> bool:
        at = str(body.get("at", ""))
        return (
            (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
            and (self.request_id is None or body.get("request_id") == self.request_id)
            and (self.event is None or body.get("event") == self.event)
        )


def _matches(found: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(found.get(name) == value for name, value in wanted.items())
