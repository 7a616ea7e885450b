"""The figures of a small hand-built log: every section counted from the records alone."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from report_support import AGENT, ALICE, CI, DAN, SAM, SOFIA, T0, Log, at

from grantline.report.figures import Figures, Period
from grantline.report.summary import Count, Summary, counter_percentile, distribution
from grantline.report.tallies import denial_kind
from grantline.report.timeline import TimelineCounter


def scenario() -> Log:
    log = Log()
    log.request("old", -60)  # before the period: its later records must not count
    log.decide("old", -60)
    log.grant("g1", 0, took=0.004)
    log.grant("g2", 1, took=0.010, subject=ALICE, ttl=300)
    log.add("g1", "revoked", 30, by="user:operator", reason="job done", source="api")
    log.issue("old", 2)
    log.deny(
        "d1",
        3,
        ["ttl_seconds 901 exceeds the cap of 900 for db-write"],
        role="db-write",
        ttl=901,
        purpose="<script>alert(1)</script>",
    )
    log.deny("d2", 4, ["unknown role superuser"], role="superuser")
    log.deny(
        "d3",
        5,
        ["separation of duties: prod-approver conflicts with the active grant of deployer"],
        role="prod-approver",
        ttl=60,
    )
    # Approved by a quorum, two seconds after the request, then collected.
    log.request("a1", 6, subject=ALICE, role="report-write", target="s3://reports")
    log.decide("a1", 6, cap=1800, require_approval=True, rule="approval")
    log.add("a1", "approval_given", 8, approver={"subject": SAM}, groups=["security"])
    log.decide("a1", 8, cap=1800)
    quorum = {"all_of": [{"group": "security", "count": 1}]}
    log.add("a1", "approved", 8, by="approvers", approvers={"security": [SAM]}, requirement=quorum)
    log.issue("a1", 8)
    log.add("a1", "collected", 9, by=ALICE)
    # Rejected; and refused, then expired while pending.
    log.request("a2", 10, subject=ALICE, role="report-write", target="s3://reports")
    log.decide("a2", 10, cap=1800, require_approval=True)
    log.add("a2", "rejected", 11, approver={"subject": SOFIA}, reason="no ticket")
    log.request("a3", 12, subject=ALICE, role="db-admin")
    log.decide("a3", 12, require_approval=True)
    refusal = {
        "allow": False,
        "reasons": ["separation of duties: approver user:dan holds deployer"],
    }
    log.add(
        "a3", "approval_refused", 13, approver={"subject": DAN}, action="approve", decision=refusal
    )
    log.add("a3", "expired", 20, phase="pending_approval", deadline=at(19), missing=[])
    # Break-glass: one flagged by the reconciler, one reviewed.
    for rid, start in (("b1", 14), ("b2", 15)):
        log.request(rid, start, subject=ALICE, role="db-admin", break_glass=True, purpose="INC-1")
        log.decide(rid, start, cap=900, rule="break_glass", break_glass=True)
        log.add(
            rid, "approved", start, by="break_glass", review_due_at=at(start + 5), break_glass=True
        )
        log.issue(rid, start + 0.002, break_glass=True)
    log.add(
        "b1",
        "reconciled",
        25,
        finding="break_glass_unreviewed",
        message="not reviewed",
        action="none",
    )
    log.add("b2", "reviewed", 26, by=SAM, reason="PIR-1")
    # An agent's key-bound grant that expired, recorded by the reconciler.
    log.grant("ag", 16, subject=ALICE, agent=AGENT, ttl=2)
    log.records[-1]["data"]["cnf"] = {"jkt": "thumb"}
    log.add("ag", "expired", 27, source="reconciler")
    log.add(
        "nobody",
        "reconciled",
        28,
        finding="issuance_without_approval",
        message="unknown",
        action="revoked",
    )
    log.add("old", "reconciled", 29, finding="alive_after_end", message="old", action="revoked")
    log.records.append({"event": "checkpoint", "size": len(log.records), "at": at(30)})
    return log


def figures_of(log: Log, period: Period | None = None) -> Summary:
    figures = Figures(period or Period(since=T0))
    for record in log.records:
        figures.feed(record)
    return figures.finish()


def as_map(rows: tuple[Count, ...]) -> dict[str, int]:
    return {row.key: row.count for row in rows}


def test_requests_in_the_period_are_counted_by_where_they_stand() -> None:
    summary = figures_of(scenario())
    assert summary.requests.total == 11
    assert as_map(summary.requests.by_outcome) == {
        "issued": 4,
        "revoked": 1,
        "denied": 3,
        "rejected": 1,
        "expired_waiting_approval": 1,
        "expired": 1,
    }
    assert as_map(summary.requests.by_agent) == {AGENT: 1}
    assert summary.requests.first_at == at(0)
    assert summary.requests.decisions == 12  # a1 decided twice


def test_grants_by_role_target_identity_and_approval() -> None:
    grants = figures_of(scenario()).grants
    assert grants.total == 6
    assert as_map(grants.by_role) == {"db-read": 3, "report-write": 1, "db-admin": 2}
    assert as_map(grants.by_subject) == {CI: 1, ALICE: 5}
    assert as_map(grants.by_target) == {"postgres://orders-db": 5, "s3://reports": 1}
    assert as_map(grants.by_credential_type) == {"jwt": 6}
    assert as_map(grants.by_approval) == {"policy": 3, "approvers": 1, "break_glass": 2}
    assert (grants.agent, grants.key_bound, grants.collected, grants.subjects) == (1, 1, 1, 2)


def test_denials_by_reason_and_kind_link_their_requests() -> None:
    denials = figures_of(scenario()).denials
    assert denials.total == 3
    assert as_map(denials.by_kind) == {"ttl_cap": 1, "unknown_role": 1, "separation_of_duties": 1}
    ttl = next(c for c in denials.by_reason if c.key.startswith("ttl_seconds 901"))
    (example,) = ttl.examples
    assert (example.request_id, example.seq, example.role) == ("d1", 15, "db-write")
    assert example.detail == "<script>alert(1)</script>"  # kept as text; the page escapes it


def test_approvals_quorum_rejection_refusal_and_expiry() -> None:
    approvals = figures_of(scenario()).approvals
    assert approvals.needed == 3
    assert approvals.approved_by_quorum == 1
    assert approvals.rejected == 1
    assert approvals.expired_pending == 1
    assert approvals.pending == 0
    assert (approvals.given, approvals.refusals) == (1, 1)
    assert {(a.subject, a.given, a.rejected, a.refused) for a in approvals.approvers} == {
        (SAM, 1, 0, 0),
        (SOFIA, 0, 1, 0),
        (DAN, 0, 0, 1),
    }
    (reason,) = approvals.refusal_reasons
    assert reason.examples[0].request_id == "a3"


def test_break_glass_reviewed_and_overdue() -> None:
    glass = figures_of(scenario()).break_glass
    assert (glass.requested, glass.granted, glass.denied) == (2, 2, 0)
    assert (glass.reviewed, glass.review_overdue, glass.flagged_by_reconciler) == (1, 1, 1)
    assert {(i.ref.request_id, i.review, i.reviewed_by) for i in glass.items} == {
        ("b1", "overdue", ""),
        ("b2", "reviewed", SAM),
    }


def test_time_to_issue_by_kind_of_approval() -> None:
    issue = figures_of(scenario()).time_to_issue
    by_kind = dict(zip(issue.kinds, issue.distributions, strict=True))
    assert by_kind["policy"].count == 3
    assert (by_kind["policy"].p50_ms, by_kind["policy"].max_ms) == (5, 10)
    assert (by_kind["approvers"].count, by_kind["approvers"].max_ms) == (1, 2000)
    assert (by_kind["break_glass"].count, by_kind["break_glass"].p99_ms) == (2, 2)
    assert sum(sum(b.counts) for b in issue.histogram) == 6


def test_credentials_revoked_expired_and_findings() -> None:
    summary = figures_of(scenario())
    credentials = summary.credentials
    assert (credentials.revoked_before_expiry, credentials.revoked_after_expiry) == (1, 0)
    assert as_map(credentials.revoked_by) == {"user:operator": 1}
    assert as_map(credentials.revoke_reasons) == {"job done": 1}
    assert credentials.expired == 1
    reconciler = summary.reconciler
    # "old" was requested before the period: its finding is not this period's.
    assert as_map(reconciler.by_finding) == {
        "break_glass_unreviewed": 1,
        "issuance_without_approval": 1,
    }
    assert reconciler.expired_recorded == 1
    assert [f.request_id for f in summary.findings] == ["b1", "nobody"]


def test_ttl_against_the_cap_recorded_or_named_in_the_denial() -> None:
    rows = {(r.role, r.break_glass): r for r in figures_of(scenario()).ttl}
    write = rows[("db-write", False)]
    assert (write.cap, write.requests, write.above_cap, write.values) == (900, 1, 1, ((901, 1),))
    assert rows[("db-admin", True)].cap == 900
    assert rows[("superuser", False)].cap is None
    read = rows[("db-read", False)]
    assert (read.requests, read.min_seconds, read.max_seconds) == (3, 2, 600)


def test_timeline_counts_every_grant_and_denial_once() -> None:
    summary = figures_of(scenario())
    assert summary.timeline.bucket_seconds == 1  # the log spans half a minute
    assert sum(b.grants for b in summary.timeline.buckets) == summary.grants.total
    assert sum(b.denials for b in summary.timeline.buckets) == summary.denials.total


def test_the_period_is_half_open_on_the_requested_record() -> None:
    log = Log()
    log.grant("before", -1)
    log.grant("first", 0)
    log.grant("last", 59.999)
    log.grant("after", 60)
    period = Period(since=T0, until=T0 + timedelta(minutes=1))
    summary = figures_of(log, period)
    assert summary.grants.total == 2
    assert summary.since == at(0)
    assert summary.until == at(60)


def test_malformed_records_are_skipped_not_fatal() -> None:
    figures = Figures()
    for record in (
        {"event": "requested"},
        {"event": "requested", "request_id": "x", "at": "yesterday", "data": {}},
        {"event": 7, "request_id": "x", "at": at(0), "data": {}},
        {"event": "requested", "request_id": "x", "at": at(0), "data": {"request": "nope"}},
        {"event": "issued", "request_id": "x", "at": at(0), "data": {"cnf": []}},
    ):
        figures.feed(record)
    summary = figures.finish()
    assert summary.records_read == 5
    assert summary.requests.total == 1
    assert summary.grants.total == 1


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("ttl_seconds 901 exceeds the cap of 900 for db-write", "ttl_cap"),
        ("ttl_seconds 901 exceeds the break-glass cap of 900 for db-admin", "ttl_cap"),
        ("at approval: ttl_seconds 5 exceeds the cap of 4 for x", "ttl_cap"),
        ("unknown role superuser", "unknown_role"),
        ("separation of duties: a conflicts with the active grant of b", "separation_of_duties"),
        ("subject user:x is not bound to role db-read", "not_bound"),
        ("role db-admin is human_only and cannot be granted to an agent", "human_only"),
        ("target s3://x is not allowed for role db-read", "target_not_allowed"),
        ("role report-write has no break-glass access", "break_glass"),
        ("ttl_seconds must be a number", "invalid_request"),
        ("something else entirely", "other"),
    ],
)
def test_denial_kinds(reason: str, kind: str) -> None:
    assert denial_kind(reason) == kind


def test_nearest_rank_percentiles() -> None:
    spread = distribution(range(1, 101))
    assert (spread.count, spread.p50_ms, spread.p90_ms, spread.p99_ms, spread.max_ms) == (
        100, 50, 90, 99, 100,
    )  # fmt: skip
    assert distribution([]).p50_ms is None
    assert distribution([7]).p99_ms == 7
    assert counter_percentile(Counter({1: 3, 10: 1}), 0.5) == 1
    assert counter_percentile(Counter({1: 3, 10: 1}), 0.9) == 10


def test_the_timeline_widens_its_buckets_with_the_span() -> None:
    start = int(T0.timestamp() * 1000)
    counter = TimelineCounter()
    for minute in range(3 * 24 * 60):  # three days, one grant a minute
        counter.grant(start + minute * 60_000)
    timeline = counter.finish()
    assert timeline.bucket_seconds == 3600
    assert len(timeline.buckets) == 72
    assert {b.grants for b in timeline.buckets} == {60}
    assert TimelineCounter().finish().buckets == ()
