"""Counters the figures keep, one small class per section of the report; each turns itself
into its part of the summary. No I/O, no parsing: ``figures`` hands them plain values."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from grantline.report.summary import (
    Approvals,
    Approver,
    Count,
    Credentials,
    Denials,
    Grants,
    HistogramBin,
    Reconciler,
    Ref,
    TimeToIssue,
    TtlRow,
    Usage,
    counter_percentile,
    counts,
    distribution,
)

EXAMPLES = 5
MAX_TTL_VALUES = 200
ISSUE_KINDS = ("policy", "approvers", "break_glass")
# Upper bounds of the time-to-issue histogram, in milliseconds (None: everything above).
_ISSUE_BINS: tuple[tuple[str, int | None], ...] = (
    ("≤ 10 ms", 10),
    ("≤ 50 ms", 50),
    ("≤ 100 ms", 100),
    ("≤ 500 ms", 500),
    ("≤ 1 s", 1000),
    ("≤ 5 s", 5000),
    ("≤ 1 min", 60_000),
    ("≤ 10 min", 600_000),
    ("≤ 1 h", 3_600_000),
    ("> 1 h", None),
)
AT_APPROVAL = "at approval: "
# Kinds of denial reason as the shipped policy words them, first match wins. A policy with
# other wording lands in "other"; the reasons themselves are always counted as written.
_DENIAL_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ttl_cap", re.compile(r"^ttl_seconds \S+ exceeds the (break-glass )?cap of \d+")),
    ("unknown_role", re.compile(r"^unknown role ")),
    ("separation_of_duties", re.compile(r"^separation of duties")),
    ("human_only", re.compile(r"is human_only")),
    ("not_bound", re.compile(r"is not bound to role")),
    ("target_not_allowed", re.compile(r"^target .* is not allowed for role")),
    ("credential_type", re.compile(r"^credential_type ")),
    ("break_glass", re.compile(r"break-glass|break glass")),
    ("invalid_request", re.compile(r"must be|below the minimum")),
)
_CAP_IN_REASON = re.compile(r"exceeds the (?:break-glass )?cap of (\d+)")


def denial_kind(reason: str) -> str:
    """The kind of a denial reason (``ttl_cap``, ``unknown_role``, ...) or ``other``."""
    reason = reason.removeprefix(AT_APPROVAL)
    for kind, pattern in _DENIAL_KINDS:
        if pattern.search(reason):
            return kind
    return "other"


def cap_named_in(reasons: list[str]) -> int | None:
    """The TTL cap a denial names (records from before decisions carried the cap)."""
    for reason in reasons:
        found = _CAP_IN_REASON.search(reason)
        if found:
            return int(found.group(1))
    return None


class Examples:
    """A counter that keeps the first few requests of each key, to link to."""

    def __init__(self) -> None:
        self.counter: Counter[str] = Counter()
        self.refs: defaultdict[str, list[Ref]] = defaultdict(list)

    def add(self, key: str, ref: Ref) -> None:
        self.counter[key] += 1
        if len(self.refs[key]) < EXAMPLES:
            self.refs[key].append(ref)

    def top(self, top: int) -> tuple[Count, ...]:
        return counts(self.counter, top, self.refs)


@dataclass
class GrantTally:
    by_role: Counter[str] = field(default_factory=Counter)
    by_target: Counter[str] = field(default_factory=Counter)
    by_subject: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_approval: Counter[str] = field(default_factory=Counter)
    agent: int = 0
    key_bound: int = 0
    collected: int = 0
    to_issue: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in ISSUE_KINDS})

    def add(self, role: str, target: str, subject: str, credential_type: str, kind: str) -> None:
        self.by_role[role] += 1
        self.by_target[target] += 1
        self.by_subject[subject] += 1
        self.by_type[credential_type] += 1
        self.by_approval[kind] += 1

    def took(self, kind: str, millis: int) -> None:
        if kind in self.to_issue:
            self.to_issue[kind].append(max(millis, 0))

    def summary(self, top: int) -> Grants:
        return Grants(
            total=self.by_role.total(),
            subjects=len(self.by_subject),
            by_role=counts(self.by_role),
            by_target=counts(self.by_target, top),
            by_subject=counts(self.by_subject, top),
            by_credential_type=counts(self.by_type),
            by_approval=counts(self.by_approval),
            agent=self.agent,
            key_bound=self.key_bound,
            collected=self.collected,
        )

    def time_to_issue(self) -> TimeToIssue:
        bins = tuple(
            HistogramBin(label, upper, tuple(_in_bin(self.to_issue[k], i) for k in ISSUE_KINDS))
            for i, (label, upper) in enumerate(_ISSUE_BINS)
        )
        return TimeToIssue(
            ISSUE_KINDS, tuple(distribution(self.to_issue[k]) for k in ISSUE_KINDS), bins
        )


def _in_bin(values: Iterable[int], index: int) -> int:
    lower = _ISSUE_BINS[index - 1][1] if index else None
    upper = _ISSUE_BINS[index][1]
    return sum(1 for v in values if (lower is None or v > lower) and (upper is None or v <= upper))


@dataclass
class DenialTally:
    total: int = 0
    at_approval: int = 0
    reasons: Examples = field(default_factory=Examples)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, reasons: Iterable[str], ref: Ref, *, at_approval: bool) -> None:
        self.total += 1
        self.at_approval += at_approval
        for reason in dict.fromkeys(reasons):  # each reason once per request
            self.reasons.add(reason, ref)
            self.kinds[denial_kind(reason)] += 1

    def summary(self, top: int) -> Denials:
        return Denials(
            total=self.total,
            distinct_reasons=len(self.reasons.counter),
            by_reason=self.reasons.top(top),
            by_kind=counts(self.kinds),
            at_approval=self.at_approval,
        )


@dataclass
class ApprovalTally:
    needed: int = 0
    quorum: int = 0
    rejected: int = 0
    expired_pending: int = 0
    denied_at_approval: int = 0
    given_by: Counter[str] = field(default_factory=Counter)
    rejected_by: Counter[str] = field(default_factory=Counter)
    refused_by: Counter[str] = field(default_factory=Counter)
    refusals: Examples = field(default_factory=Examples)

    def summary(self, top: int, pending: int) -> Approvals:
        people = set(self.given_by) | set(self.rejected_by) | set(self.refused_by)
        approvers = sorted(
            (
                Approver(p, self.given_by[p], self.rejected_by[p], self.refused_by[p])
                for p in people
            ),
            key=lambda a: (-(a.given + a.rejected + a.refused), a.subject),
        )
        return Approvals(
            needed=self.needed,
            approved_by_quorum=self.quorum,
            rejected=self.rejected,
            expired_pending=self.expired_pending,
            denied_at_approval=self.denied_at_approval,
            pending=pending,
            given=self.given_by.total(),
            refusals=self.refused_by.total(),
            refusal_reasons=self.refusals.top(top),
            approvers=tuple(approvers),
        )


@dataclass
class CredentialTally:
    revoked_before: int = 0
    revoked_after: int = 0
    revoked_by: Examples = field(default_factory=Examples)
    reasons: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    expired: int = 0
    revocation_failed: int = 0
    failed: Examples = field(default_factory=Examples)

    def summary(self, top: int) -> Credentials:
        return Credentials(
            revoked_before_expiry=self.revoked_before,
            revoked_after_expiry=self.revoked_after,
            revoked_by=self.revoked_by.top(top),
            revoke_reasons=counts(self.reasons, top),
            revoke_sources=counts(self.sources),
            expired=self.expired,
            revocation_failed=self.revocation_failed,
            failed=self.failed.counter.total(),
            failed_by_code=self.failed.top(top),
        )


@dataclass
class UsageTally:
    issued: int = 0
    used: set[str] = field(default_factory=set)
    ended_unused: Examples = field(default_factory=Examples)
    uses: int = 0
    after_end: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    by_request: Counter[str] = field(default_factory=Counter)
    refs: dict[str, Ref] = field(default_factory=dict)
    results: Examples = field(default_factory=Examples)

    def use(self, request_id: str, ref: Ref, data: Mapping[str, Any]) -> None:
        count = data.get("count")
        count = count if isinstance(count, int) and not isinstance(count, bool) else 0
        self.used.add(request_id)
        self.uses += count
        self.by_request[request_id] += count
        self.refs.setdefault(request_id, ref)
        after = data.get("after_end")
        self.after_end += after if isinstance(after, int) and not isinstance(after, bool) else 0
        for name, into in (("operations", self.operations), ("outcomes", self.outcomes)):
            member = data.get(name)
            if isinstance(member, Mapping):
                for key, value in member.items():
                    if isinstance(value, int) and not isinstance(value, bool):
                        into[str(key)] += value

    def summary(self, top: int) -> Usage:
        most = [
            Count(request_id, uses, (self.refs[request_id],))
            for request_id, uses in sorted(
                self.by_request.items(), key=lambda item: (-item[1], item[0])
            )[:top]
        ]
        return Usage(
            issued=self.issued,
            used=len(self.used),
            ended_unused=self.ended_unused.top(top),
            uses=self.uses,
            after_end=self.after_end,
            by_operation=counts(self.operations, top),
            by_outcome=counts(self.outcomes),
            most_used=tuple(most),
            outcomes=self.results.top(top),
        )


@dataclass
class FindingTally:
    """The reconciler's findings (``reconciled`` records) and what it recorded besides."""

    limit: int = 200
    by_finding: Examples = field(default_factory=Examples)
    items: list[Ref] = field(default_factory=list)
    expired_recorded: int = 0
    revoked_recorded: int = 0

    def add(self, finding: str, ref: Ref) -> None:
        self.by_finding.add(finding, ref)
        if len(self.items) < self.limit:
            self.items.append(ref)

    def summary(self) -> Reconciler:
        return Reconciler(
            findings=self.by_finding.counter.total(),
            by_finding=counts(self.by_finding.counter, examples=self.by_finding.refs),
            expired_recorded=self.expired_recorded,
            revoked_recorded=self.revoked_recorded,
        )


@dataclass
class TtlTally:
    """Requested TTLs by role (break-glass apart), each request judged against its own cap."""

    values: defaultdict[tuple[str, bool], Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    above: Counter[tuple[str, bool]] = field(default_factory=Counter)
    caps: dict[tuple[str, bool], int] = field(default_factory=dict)

    def add(self, role: str, break_glass: bool, ttl: int, cap: int | None) -> None:
        key = (role, break_glass)
        self.values[key][ttl] += 1
        if cap is not None:
            self.caps[key] = cap
            self.above[key] += ttl > cap

    def summary(self) -> tuple[TtlRow, ...]:
        return tuple(self._row(key) for key in sorted(self.values))

    def _row(self, key: tuple[str, bool]) -> TtlRow:
        seen = self.values[key]
        frequent = sorted(seen.items(), key=lambda item: (-item[1], item[0]))[:MAX_TTL_VALUES]
        return TtlRow(
            role=key[0],
            break_glass=key[1],
            cap=self.caps.get(key),
            requests=seen.total(),
            above_cap=self.above[key],
            min_seconds=min(seen),
            p50_seconds=counter_percentile(seen, 0.5),
            max_seconds=max(seen),
            values=tuple(sorted(frequent)),
        )
