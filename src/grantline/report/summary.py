"""The typed summary a report shows: plain frozen dataclasses, each field a number, a name or
a reference to a request, so the JSON twin is ``dataclasses.asdict`` of the same object."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ref:
    """A request (or a finding about one) the report names: its id and the seq of the record
    that shows it, for the lineage link, and a line about it (attacker-influenced text)."""

    request_id: str
    seq: int | None
    subject: str = ""
    role: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Count:
    """How many of ``key``, with a few requests that show it."""

    key: str
    count: int
    examples: tuple[Ref, ...] = ()


@dataclass(frozen=True, slots=True)
class Distribution:
    """Durations in milliseconds, by nearest-rank percentile; None when there are none."""

    count: int
    p50_ms: int | None
    p90_ms: int | None
    p99_ms: int | None
    max_ms: int | None


@dataclass(frozen=True, slots=True)
class Requests:
    total: int
    decisions: int  # evaluated records: a request with approvers is decided again at quorum
    by_outcome: tuple[Count, ...]
    by_agent: tuple[Count, ...]
    first_at: str | None
    last_at: str | None


@dataclass(frozen=True, slots=True)
class Grants:
    total: int
    subjects: int  # distinct subjects granted
    by_role: tuple[Count, ...]
    by_target: tuple[Count, ...]
    by_subject: tuple[Count, ...]
    by_credential_type: tuple[Count, ...]
    by_approval: tuple[Count, ...]
    agent: int
    key_bound: int
    collected: int


@dataclass(frozen=True, slots=True)
class Denials:
    total: int
    distinct_reasons: int
    by_reason: tuple[Count, ...]
    by_kind: tuple[Count, ...]
    at_approval: int


@dataclass(frozen=True, slots=True)
class Approver:
    subject: str
    given: int
    rejected: int
    refused: int


@dataclass(frozen=True, slots=True)
class Approvals:
    needed: int
    approved_by_quorum: int
    rejected: int
    expired_pending: int
    denied_at_approval: int
    pending: int
    given: int
    refusals: int
    refusal_reasons: tuple[Count, ...]
    approvers: tuple[Approver, ...]


@dataclass(frozen=True, slots=True)
class BreakGlassItem:
    ref: Ref
    status: str
    review: str  # reviewed, overdue or pending
    reviewed_by: str
    review_due_at: str | None


@dataclass(frozen=True, slots=True)
class BreakGlass:
    requested: int
    granted: int
    denied: int
    reviewed: int
    review_overdue: int
    flagged_by_reconciler: int
    awaiting_review: int
    items: tuple[BreakGlassItem, ...]


@dataclass(frozen=True, slots=True)
class HistogramBin:
    label: str
    upper_ms: int | None
    counts: tuple[int, ...]  # one per kind of TimeToIssue.kinds


@dataclass(frozen=True, slots=True)
class TimeToIssue:
    kinds: tuple[str, ...]
    distributions: tuple[Distribution, ...]
    histogram: tuple[HistogramBin, ...]


@dataclass(frozen=True, slots=True)
class Credentials:
    revoked_before_expiry: int
    revoked_after_expiry: int
    revoked_by: tuple[Count, ...]
    revoke_reasons: tuple[Count, ...]
    revoke_sources: tuple[Count, ...]
    expired: int
    revocation_failed: int
    failed: int
    failed_by_code: tuple[Count, ...]


@dataclass(frozen=True, slots=True)
class Usage:
    """Were the grants used: ``used`` records (resource servers, introspection, OpenBao's
    audit log) and ``outcome`` records (what the actions they served did)."""

    issued: int
    used: int
    # Issued grants that ended (revoked or expired) with no use recorded.
    ended_unused: tuple[Count, ...]
    uses: int
    after_end: int
    by_operation: tuple[Count, ...]
    by_outcome: tuple[Count, ...]
    most_used: tuple[Count, ...]  # by request: key is the request id, count its uses
    outcomes: tuple[Count, ...]  # reported outcomes by result


@dataclass(frozen=True, slots=True)
class Reconciler:
    findings: int
    by_finding: tuple[Count, ...]
    expired_recorded: int
    revoked_recorded: int


@dataclass(frozen=True, slots=True)
class TtlRow:
    """Requested TTLs of one role against its cap (the break-glass cap on break-glass rows).
    ``cap`` is the one in force at the latest request; ``above_cap`` counts each request
    against the cap recorded with its own decision."""

    role: str
    break_glass: bool
    cap: int | None
    requests: int
    above_cap: int
    min_seconds: int
    p50_seconds: int
    max_seconds: int
    values: tuple[tuple[int, int], ...]  # (ttl, requests), the most frequent


@dataclass(frozen=True, slots=True)
class Bucket:
    start: str
    grants: int
    denials: int


@dataclass(frozen=True, slots=True)
class Timeline:
    bucket_seconds: int
    buckets: tuple[Bucket, ...]


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything the log says about the requests made in the period."""

    since: str | None
    until: str | None
    records_read: int
    requests: Requests
    grants: Grants
    denials: Denials
    approvals: Approvals
    break_glass: BreakGlass
    time_to_issue: TimeToIssue
    credentials: Credentials
    usage: Usage
    reconciler: Reconciler
    findings: tuple[Ref, ...]
    ttl: tuple[TtlRow, ...]
    timeline: Timeline
    other_events: tuple[Count, ...]


def counts(
    counter: Mapping[str, int],
    top: int | None = None,
    examples: Mapping[str, Sequence[Ref]] | None = None,
) -> tuple[Count, ...]:
    """The counter as Counts, largest first (ties by key), the first ``top`` of them."""
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    if top is not None:
        ordered = ordered[:top]
    found = examples or {}
    return tuple(Count(key, count, tuple(found.get(key, ()))) for key, count in ordered)


def distribution(values: Iterable[int]) -> Distribution:
    """Nearest-rank percentiles of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return Distribution(0, None, None, None, None)
    return Distribution(
        len(ordered),
        percentile(ordered, 0.5),
        percentile(ordered, 0.9),
        percentile(ordered, 0.99),
        ordered[-1],
    )


def percentile(ordered: Sequence[int], q: float) -> int:
    """The nearest-rank ``q`` quantile of a sorted, non-empty sequence."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def counter_percentile(counter: Counter[int], q: float) -> int:
    """The nearest-rank ``q`` quantile of values given as value -> how many (non-empty)."""
    total = sum(counter.values())
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value in sorted(counter):
        seen += counter[value]
        if seen >= rank:
            return value
    raise ValueError("empty counter")
