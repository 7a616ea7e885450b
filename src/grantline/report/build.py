"""A report from an export file: verify it, read its figures, map the controls it evidences.

The file is read twice, both times streamed: once by the verifier (on every core), once for
the figures. The figures are counted whether or not the export verifies; the verification
status says whether they can be trusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.evidence.parallel import verify_file
from grantline.evidence.verify import VerifyReport
from grantline.report.controls import CONTROLS, MAESTRO_LAYERS, NIST_CSF, OWASP_NHI, evidence_of
from grantline.report.figures import Figures, Period
from grantline.report.summary import Count, Summary

FORMAT = "grantline/report/v1"
# Categories of verification findings that mean the evidence itself cannot be trusted.
# "policy" findings (a break-glass grant never reviewed) are controls the records show
# were not honoured: the records still verify, and the report is where they are shown.
UNTRUSTED = frozenset({"integrity", "lineage"})


@dataclass(frozen=True, slots=True)
class VerifyFinding:
    category: str
    code: str
    seq: int | None
    request_id: str | None
    message: str
    line: int | None


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``audit verify`` would say about the export, for the report's banner."""

    ok: bool
    trusted: bool
    records: int
    records_verified: int
    checkpoint_size: int | None
    checkpoint_at: str | None
    counts: tuple[Count, ...]  # key: "category/code"
    findings: tuple[VerifyFinding, ...]
    findings_total: int


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ControlRow:
    id: str
    title: str
    how: str
    evidence: tuple[Count, ...]
    evidence_total: int
    owasp_nhi: tuple[Item, ...]
    nist_csf: tuple[Item, ...]
    maestro: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Report:
    format: str
    generated_at: str
    source: str
    lineage_base: str | None
    verification: Verification
    figures: Summary
    controls: tuple[ControlRow, ...]


@dataclass(frozen=True, slots=True)
class Options:
    """Where the export came from, the period, and how much of each list to show."""

    source: str
    generated_at: str
    period: Period = field(default_factory=Period)
    lineage_base: str | None = None
    top: int = 10
    workers: int | None = None


def build_report(path: Path, keys: Mapping[str, Ed25519PublicKey], options: Options) -> Report:
    """Verify the export in ``path`` and count its figures. Raises OSError when the file
    cannot be read."""
    verification = verification_of(verify_file(path, keys, workers=options.workers), options.top)
    figures = read_figures(path, options.period, options.top)
    return Report(
        format=FORMAT,
        generated_at=options.generated_at,
        source=options.source,
        lineage_base=options.lineage_base,
        verification=verification,
        figures=figures,
        controls=control_rows(facts_of(figures, verification)),
    )


def read_figures(path: Path, period: Period, top: int = 10) -> Summary:
    """The figures of the records in the export file, streamed."""
    figures = Figures(period, top=top)
    for record in _records(path):
        figures.feed(record)
    return figures.finish()


def _records(path: Path) -> Iterator[Mapping[str, Any]]:
    with path.open("rb") as handle:
        for line in handle:
            try:
                parsed = json.loads(line)
            except ValueError:
                continue  # the verifier reports it; the figures skip it
            if isinstance(parsed, dict):
                yield parsed


def verification_of(report: VerifyReport, top: int) -> Verification:
    shown = report.findings[: max(top * 10, 100)]
    trusted = not any(f.category in UNTRUSTED for f in report.findings)
    checkpoint = report.checkpoint
    return Verification(
        ok=report.ok,
        trusted=trusted,
        records=report.records,
        records_verified=report.records if trusted else 0,
        checkpoint_size=checkpoint.size if checkpoint else None,
        checkpoint_at=checkpoint.at if checkpoint else None,
        counts=tuple(
            Count(f"{category}/{code}", count)
            for (category, code), count in sorted(report.counts().items())
        ),
        findings=tuple(
            VerifyFinding(f.category, f.code, f.seq, f.request_id, f.message, f.line) for f in shown
        ),
        findings_total=len(report.findings),
    )


def facts_of(figures: Summary, verification: Verification) -> dict[str, int]:
    """The numbers controls cite as evidence, by name (see ``controls.Control.evidence``)."""
    facts = {
        "requests.total": figures.requests.total,
        "grants.total": figures.grants.total,
        "grants.agent": figures.grants.agent,
        "grants.key_bound": figures.grants.key_bound,
        "approvals.needed": figures.approvals.needed,
        "approvals.approved_by_quorum": figures.approvals.approved_by_quorum,
        "approvals.rejected": figures.approvals.rejected,
        "approvals.expired_pending": figures.approvals.expired_pending,
        "approvals.refusals": figures.approvals.refusals,
        "break_glass.granted": figures.break_glass.granted,
        "break_glass.reviewed": figures.break_glass.reviewed,
        "break_glass.flagged_by_reconciler": figures.break_glass.flagged_by_reconciler,
        "credentials.revoked_before_expiry": figures.credentials.revoked_before_expiry,
        "credentials.expired": figures.credentials.expired,
        "reconciler.findings": figures.reconciler.findings,
        "reconciler.expired_recorded": figures.reconciler.expired_recorded,
        "verification.records_verified": verification.records_verified,
    }
    facts.update({f"denials.kinds.{c.key}": c.count for c in figures.denials.by_kind})
    return facts


def control_rows(facts: Mapping[str, int]) -> tuple[ControlRow, ...]:
    rows = []
    for control in CONTROLS:
        evidence = tuple(Count(label, count) for label, count in evidence_of(control, facts))
        rows.append(
            ControlRow(
                id=control.id,
                title=control.title,
                how=control.how,
                evidence=evidence,
                evidence_total=sum(c.count for c in evidence),
                owasp_nhi=tuple(Item(f"{i}:2025", OWASP_NHI[i]) for i in control.owasp_nhi),
                nist_csf=tuple(Item(i, NIST_CSF[i]) for i in control.nist_csf),
                maestro=tuple(Item(_layer(layer), threat) for layer, threat in control.maestro),
            )
        )
    return tuple(rows)


def _layer(layer: str) -> str:
    name = MAESTRO_LAYERS[layer]
    return name if layer == "CL" else f"{layer} {name}"


def as_json(report: Report) -> dict[str, Any]:
    """The report as JSON data: every object naming a request also carries its lineage
    ``url`` when the broker is known."""
    data = asdict(report)
    if report.lineage_base:
        _link(data, report.lineage_base)
    return data


def lineage_url(base: str, request_id: str) -> str:
    """The broker's lineage page of one request."""
    return f"{base.rstrip('/')}/ui/requests/{quote(request_id, safe='')}"


def _link(value: object, base: str) -> None:
    if isinstance(value, dict):
        request_id = value.get("request_id")
        if isinstance(request_id, str) and request_id:
            value["url"] = lineage_url(base, request_id)
        for member in value.values():
            _link(member, base)
    elif isinstance(value, list | tuple):
        for member in value:
            _link(member, base)
