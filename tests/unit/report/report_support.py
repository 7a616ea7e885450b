"""Hand-built records for the report's unit tests: a small log written like the broker writes
it (the members the figures read), without signatures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from grantline.domain.models import format_time

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CI, ALICE, SAM, SOFIA, DAN = (
    "spiffe://example.org/ci-runner",
    "user:alice",
    "user:sam",
    "user:sofia",
    "user:dan",
)
AGENT = "spiffe://example.org/agents/report-bot"


def at(seconds: float) -> str:
    return format_time(T0 + timedelta(seconds=seconds))


@dataclass
class Log:
    """Records in log order; ``add`` numbers them."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, request_id: str, event: str, seconds: float, **data: Any) -> int:
        seq = len(self.records) + 1
        self.records.append(
            {
                "v": 1,
                "seq": seq,
                "request_id": request_id,
                "event": event,
                "at": at(seconds),
                "data": data,
            }
        )
        return seq

    def request(
        self,
        request_id: str,
        seconds: float,
        *,
        subject: str = CI,
        role: str = "db-read",
        ttl: int = 600,
        target: str = "postgres://orders-db",
        purpose: str = "nightly export",
        break_glass: bool = False,
        agent: str = "",
    ) -> int:
        asked = {
            "target": target,
            "role": role,
            "ttl_seconds": ttl,
            "credential_type": "jwt",
            "purpose": purpose,
            "break_glass": break_glass,
        }
        data: dict[str, Any] = {"identity": {"subject": subject}, "request": asked}
        if agent:
            data["actor"] = {"subject": agent, "chain": [agent]}
        if break_glass:
            data["break_glass"] = True
        return self.add(request_id, "requested", seconds, **data)

    def decide(
        self, request_id: str, seconds: float, cap: int | None = 3600, **decision: Any
    ) -> None:
        answer: dict[str, Any] = {"allow": True, "reasons": [], "require_approval": False}
        answer.update(decision)
        if cap is not None:
            answer["max_ttl_seconds"] = cap
        self.add(request_id, "evaluated", seconds, decision=answer, policy_digest="sha256:p")

    def issue(self, request_id: str, seconds: float, ttl: int = 600, **extra: Any) -> None:
        self.add(
            request_id,
            "issued",
            seconds,
            credential_type="jwt",
            fingerprint="sha256:f",
            issued_at=at(seconds),
            expires_at=at(seconds + ttl),
            handle={"jti": request_id},
            **extra,
        )

    def grant(self, request_id: str, seconds: float, took: float = 0.005, **asked: Any) -> None:
        """A grant by policy alone: requested, evaluated, approved, issued."""
        self.request(request_id, seconds, **asked)
        self.decide(request_id, seconds)
        self.add(request_id, "approved", seconds, by="policy", rule="rbac")
        self.issue(request_id, seconds + took, ttl=asked.get("ttl", 600))

    def deny(self, request_id: str, seconds: float, reasons: list[str], **asked: Any) -> None:
        self.request(request_id, seconds, **asked)
        self.decide(request_id, seconds, cap=None, allow=False, reasons=reasons, rule="deny")
        self.add(request_id, "denied", seconds, reasons=reasons)
