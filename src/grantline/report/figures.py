"""Figures of an access log for a period, from one pass over its parsed records, oldest first.

A request belongs to the period when its ``requested`` record does; its later records count
with it wherever they fall. State is one small object per request of the period (what it
asked, where it stands) plus counters, never the records themselves; requests made outside
the period are remembered by id only, so that their later records are left out too.
Records are attacker-influenced: members are read through ``members``, which checks types.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from grantline.domain.models import format_time
from grantline.report.members import integer, items, mapping, name, text
from grantline.report.summary import BreakGlass, BreakGlassItem, Ref, Requests, Summary, counts
from grantline.report.tallies import (
    ApprovalTally,
    CredentialTally,
    DenialTally,
    FindingTally,
    GrantTally,
    TtlTally,
    UsageTally,
    cap_named_in,
)
from grantline.report.timeline import TimelineCounter
from grantline.report.times import iso, millis, millis_of

_DETAIL_CHARS = 300
_MAX_ITEMS = 200


@dataclass(frozen=True, slots=True)
class Period:
    """[since, until): either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    def bounds(self) -> tuple[int | None, int | None]:
        """The ends in milliseconds."""
        return (
            millis_of(self.since) if self.since else None,
            millis_of(self.until) if self.until else None,
        )


class _Record(NamedTuple):
    request_id: str
    seq: int | None
    at_ms: int
    data: Mapping[str, Any]


@dataclass(slots=True)
class _Request:
    """Where one request of the period stands."""

    seq: int | None
    at_ms: int
    subject: str
    role: str
    target: str
    ttl: int
    credential_type: str
    purpose: str
    break_glass: bool
    agent: str
    status: str = "requested"
    evaluated: bool = False
    needs_approval: bool = False
    cap: int | None = None
    ttl_counted: bool = False
    approved_by: str = ""
    expires_ms: int | None = None
    review_due: str | None = None
    reviewed_by: str = ""
    review_flagged: bool = False

    def ref(self, request_id: str, seq: int | None, detail: str = "") -> Ref:
        return Ref(request_id, seq, self.subject, self.role, _short(detail))


class Figures:
    """Feed parsed records in log order, then ``finish`` for the summary."""

    def __init__(self, period: Period | None = None, *, top: int = 10) -> None:
        self._period = period or Period()
        self._top = top
        self._requests: dict[str, _Request] = {}
        self._outside: set[str] = set()
        self._read = 0
        self._decisions = 0
        self._last_ms: int | None = None
        self._grants = GrantTally()
        self._denials = DenialTally()
        self._approvals = ApprovalTally()
        self._credentials = CredentialTally()
        self._findings = FindingTally(limit=_MAX_ITEMS)
        self._usage = UsageTally()
        self._ttl = TtlTally()
        self._other: Counter[str] = Counter()
        self._by_agent: Counter[str] = Counter()
        self._since, self._until = self._period.bounds()
        self._timeline = TimelineCounter(self._since, self._until)

    def feed(self, record: Mapping[str, Any]) -> None:
        """Take one record (a parsed export line); checkpoints and malformed lines are skipped."""
        self._read += 1
        parsed = _parse(record)
        if parsed is None:
            return
        event, line = parsed
        self._last_ms = max(self._last_ms or line.at_ms, line.at_ms)
        if event == "requested":
            self._requested(line)
            return
        request = self._requests.get(line.request_id)
        if request is None:
            self._unattached(event, line)
            return
        handler = _HANDLERS.get(event)
        if handler is None:
            self._other[event] += 1
        else:
            handler(self, request, line)

    def _unattached(self, event: str, line: _Record) -> None:
        # A finding about a request the log never received (a credential found at Vault
        # with no request) counts when it was made in the period.
        known = line.request_id in self._outside
        if event == "reconciled" and not known and self._holds(line.at_ms):
            finding = text(line.data.get("finding"))
            detail = f"{finding}: {text(line.data.get('message'))}"
            self._findings.add(finding, Ref(line.request_id, line.seq, detail=_short(detail)))

    def _holds(self, at_ms: int) -> bool:
        return (self._since is None or at_ms >= self._since) and (
            self._until is None or at_ms < self._until
        )

    # -- request and decision --------------------------------------------------------------

    def _requested(self, line: _Record) -> None:
        if not self._holds(line.at_ms):
            self._outside.add(line.request_id)
            return
        identity = mapping(line.data.get("identity"))
        asked = mapping(line.data.get("request"))
        actor = mapping(line.data.get("actor"))
        request = _Request(
            seq=line.seq,
            at_ms=line.at_ms,
            subject=name(identity.get("subject")),
            role=name(asked.get("role")),
            target=name(asked.get("target")),
            ttl=integer(asked.get("ttl_seconds")) or 0,
            credential_type=name(asked.get("credential_type")),
            purpose=_short(text(asked.get("purpose"))),
            break_glass=line.data.get("break_glass") is True or asked.get("break_glass") is True,
            agent=name(actor.get("subject")),
        )
        self._requests[line.request_id] = request
        if request.agent:
            self._by_agent[request.agent] += 1

    def _evaluated(self, request: _Request, line: _Record) -> None:
        self._decisions += 1
        if request.evaluated:  # the decision taken again at quorum
            return
        request.evaluated = True
        decision = mapping(line.data.get("decision"))
        request.cap = integer(decision.get("max_ttl_seconds"))
        if decision.get("allow") is not True:
            return
        self._count_ttl(request, request.cap)
        if decision.get("require_approval") is True and not request.break_glass:
            request.needs_approval = True
            request.status = "pending_approval"
            self._approvals.needed += 1

    def _count_ttl(self, request: _Request, cap: int | None) -> None:
        if not request.ttl_counted:
            request.ttl_counted = True
            self._ttl.add(request.role, request.break_glass, request.ttl, cap)

    def _denied(self, request: _Request, line: _Record) -> None:
        reasons = [r for r in items(line.data.get("reasons")) if isinstance(r, str)]
        cap = request.cap if request.cap is not None else cap_named_in(reasons)
        self._count_ttl(request, cap)
        at_approval = request.needs_approval
        detail = request.purpose or "; ".join(reasons)
        self._denials.add(
            reasons, request.ref(line.request_id, line.seq, detail), at_approval=at_approval
        )
        self._approvals.denied_at_approval += at_approval
        self._timeline.denial(line.at_ms)
        request.status = "denied"
        request.purpose = ""

    # -- approvals ---------------------------------------------------------------------------

    def _approval_given(self, request: _Request, line: _Record) -> None:
        self._approvals.given_by[_approver(line.data)] += 1

    def _approval_refused(self, request: _Request, line: _Record) -> None:
        approver = _approver(line.data)
        self._approvals.refused_by[approver] += 1
        decision = mapping(line.data.get("decision"))
        for reason in items(decision.get("reasons")) or ["(no reason given)"]:
            ref = request.ref(line.request_id, line.seq, f"{approver}: {text(reason)}")
            self._approvals.refusals.add(text(reason), ref)

    def _rejected(self, request: _Request, line: _Record) -> None:
        self._approvals.rejected += 1
        self._approvals.rejected_by[_approver(line.data)] += 1
        request.status = "rejected"

    def _approved(self, request: _Request, line: _Record) -> None:
        request.approved_by = text(line.data.get("by"))
        request.status = "approved"
        if request.approved_by == "approvers":
            self._approvals.quorum += 1
        if request.approved_by == "break_glass":
            request.review_due = text(line.data.get("review_due_at")) or None

    # -- issuance and the credential's end -----------------------------------------------------

    def _issued(self, request: _Request, line: _Record) -> None:
        request.status = "issued"
        if not request.break_glass:
            request.purpose = ""  # only denials and break-glass grants show it: free it
        request.expires_ms = millis(line.data.get("expires_at"))
        kind = request.approved_by or "policy"
        grants = self._grants
        grants.add(request.role, request.target, request.subject, request.credential_type, kind)
        grants.took(kind, line.at_ms - request.at_ms)
        grants.agent += bool(request.agent)
        grants.key_bound += isinstance(line.data.get("cnf"), Mapping)
        self._timeline.grant(line.at_ms)
        self._usage.issued += 1

    def _used(self, request: _Request, line: _Record) -> None:
        ref = request.ref(line.request_id, line.seq)
        self._usage.use(line.request_id, ref, line.data)

    def _outcome(self, request: _Request, line: _Record) -> None:
        result = text(line.data.get("result")) or "unknown"
        action = text(line.data.get("action"))
        self._usage.results.add(result, request.ref(line.request_id, line.seq, action))

    def _ended(self, request: _Request, line: _Record) -> None:
        # A grant that ends in the log with no use recorded before.
        if line.request_id not in self._usage.used:
            self._usage.ended_unused.add(request.role, request.ref(line.request_id, line.seq))

    def _collected(self, request: _Request, line: _Record) -> None:
        self._grants.collected += 1

    def _revoked(self, request: _Request, line: _Record) -> None:
        self._ended(request, line)
        credentials = self._credentials
        before = request.expires_ms is None or line.at_ms < request.expires_ms
        credentials.revoked_before += before
        credentials.revoked_after += not before
        by, reason = text(line.data.get("by")), text(line.data.get("reason"))
        credentials.revoked_by.add(by, request.ref(line.request_id, line.seq, reason))
        credentials.reasons[_short(reason)] += 1
        source = text(line.data.get("source")) or "api"
        credentials.sources[source] += 1
        self._findings.revoked_recorded += source == "reconciler"
        request.status = "revoked"

    def _revocation_failed(self, request: _Request, line: _Record) -> None:
        self._credentials.revocation_failed += 1
        request.status = "revocation_pending"

    def _expired(self, request: _Request, line: _Record) -> None:
        if line.data.get("phase") == "pending_approval":
            self._approvals.expired_pending += 1
            request.status = "expired_waiting_approval"
            return
        self._credentials.expired += 1
        self._ended(request, line)
        self._findings.expired_recorded += line.data.get("source") == "reconciler"
        request.status = "expired"

    def _failed(self, request: _Request, line: _Record) -> None:
        code = text(line.data.get("code")) or "unknown"
        detail = text(line.data.get("message"))
        self._credentials.failed.add(code, request.ref(line.request_id, line.seq, detail))
        request.status = "failed"

    # -- reviews and findings ----------------------------------------------------------------

    def _reviewed(self, request: _Request, line: _Record) -> None:
        request.reviewed_by = text(line.data.get("by")) or "(unnamed)"

    def _reconciled(self, request: _Request, line: _Record) -> None:
        finding = text(line.data.get("finding"))
        action = text(line.data.get("action"))
        detail = f"{finding}: {text(line.data.get('message'))} (action: {action})"
        self._findings.add(finding, request.ref(line.request_id, line.seq, detail))
        if finding == "break_glass_unreviewed":
            request.review_flagged = True

    # -- the summary -----------------------------------------------------------------------------

    def finish(self) -> Summary:
        """The summary of everything fed so far."""
        statuses = Counter(r.status for r in self._requests.values())
        pending = sum(1 for r in self._requests.values() if r.status == "pending_approval")
        return Summary(
            since=_time_or_none(self._period.since),
            until=_time_or_none(self._period.until),
            records_read=self._read,
            requests=self._requests_summary(statuses),
            grants=self._grants.summary(self._top),
            denials=self._denials.summary(self._top),
            approvals=self._approvals.summary(self._top, pending),
            break_glass=self._break_glass(),
            time_to_issue=self._grants.time_to_issue(),
            credentials=self._credentials.summary(self._top),
            usage=self._usage.summary(self._top),
            reconciler=self._findings.summary(),
            findings=tuple(self._findings.items),
            ttl=self._ttl.summary(),
            timeline=self._timeline.finish(),
            other_events=counts(self._other),
        )

    def _requests_summary(self, statuses: Counter[str]) -> Requests:
        times = [r.at_ms for r in self._requests.values()]
        return Requests(
            total=len(self._requests),
            decisions=self._decisions,
            by_outcome=counts(statuses),
            by_agent=counts(self._by_agent, self._top),
            first_at=iso(min(times)) if times else None,
            last_at=iso(max(times)) if times else None,
        )

    def _break_glass(self) -> BreakGlass:
        asked = {rid: r for rid, r in self._requests.items() if r.break_glass}
        granted = {rid: r for rid, r in asked.items() if r.approved_by == "break_glass"}
        reviews = {rid: self._review_of(r) for rid, r in granted.items()}
        items = [
            BreakGlassItem(
                r.ref(rid, r.seq, r.purpose), r.status, reviews[rid], r.reviewed_by, r.review_due
            )
            for rid, r in list(granted.items())[:_MAX_ITEMS]
        ]
        return BreakGlass(
            requested=len(asked),
            granted=len(granted),
            denied=sum(1 for r in asked.values() if r.status == "denied"),
            reviewed=sum(1 for review in reviews.values() if review == "reviewed"),
            review_overdue=sum(1 for review in reviews.values() if review == "overdue"),
            flagged_by_reconciler=sum(1 for r in granted.values() if r.review_flagged),
            awaiting_review=sum(1 for review in reviews.values() if review == "pending"),
            items=tuple(items),
        )

    def _review_of(self, request: _Request) -> str:
        """reviewed; overdue (flagged by the reconciler, or due before the log's last record);
        or pending (due later)."""
        if request.reviewed_by:
            return "reviewed"
        due = millis(request.review_due)
        past_due = due is not None and self._last_ms is not None and due <= self._last_ms
        return "overdue" if request.review_flagged or past_due else "pending"


_Handler = Callable[[Figures, _Request, _Record], None]
_HANDLERS: dict[str, _Handler] = {
    "evaluated": Figures._evaluated,
    "denied": Figures._denied,
    "approval_given": Figures._approval_given,
    "approval_refused": Figures._approval_refused,
    "rejected": Figures._rejected,
    "approved": Figures._approved,
    "issued": Figures._issued,
    "collected": Figures._collected,
    "revoked": Figures._revoked,
    "revocation_failed": Figures._revocation_failed,
    "expired": Figures._expired,
    "failed": Figures._failed,
    "reviewed": Figures._reviewed,
    "reconciled": Figures._reconciled,
    "used": Figures._used,
    "outcome": Figures._outcome,
}


def _parse(record: Mapping[str, Any]) -> tuple[str, _Record] | None:
    """The event and the members the figures read, or None for a checkpoint or a line
    without them."""
    event, request_id, data = record.get("event"), record.get("request_id"), record.get("data")
    if not isinstance(event, str) or event == "checkpoint" or not isinstance(request_id, str):
        return None
    at_ms = millis(record.get("at"))
    if at_ms is None or not isinstance(data, Mapping):
        return None
    return event, _Record(request_id, integer(record.get("seq")), at_ms, data)


def _approver(data: Mapping[str, Any]) -> str:
    return text(mapping(data.get("approver")).get("subject")) or "(unnamed)"


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _time_or_none(moment: datetime | None) -> str | None:
    return format_time(moment) if moment else None
