"""The lineage page's model: a request's signed record lines turned into timeline rows.

Pure: lines and the request's summary in, frozen rows out. Every value shown comes from records
or request state that callers influence (purpose, reasons, subjects), so it stays plain text
here and the templates escape it. Each fact shown from a record names the field it comes from
(``Fact.path``), for the browser to recompute it from the verified line (``display``). A record
of any shape, even one this version does not know, becomes a row: nothing here raises on
record contents.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from grantline.api.ui.display import (
    APPROVED_BY_POLICY,
    DECIDED,
    DECISION_FACTS,
    FORMATS,
    MAX_DEPTH,
    MAX_FACTS,
    WHAT,
    WHO,
    Spec,
    chain,
    is_empty,
    lookup,
    seconds,
    shown,
    text_of,
    title_of,
)

# A lineage can be grown by anyone who may post to the request (every refused approval is
# recorded), so one page shows its first and last records only; an export holds them all.
FIRST_ROWS = 200
LAST_ROWS = 50


@dataclass(frozen=True, slots=True)
class Fact:
    """One labelled value, as text, and the field of the record body it comes from."""

    label: str
    value: str
    path: str = ""  # dotted, from the body: "data.request.purpose"; "event" for a constant


@dataclass(frozen=True, slots=True)
class DecisionView:
    """A policy's answer as a record states it: allowed or not, and why."""

    allow: bool | None  # None: the record states no allow (an approval by policy, say)
    allow_path: str
    reasons: tuple[Fact, ...]  # unlabelled, each with its own path
    facts: tuple[Fact, ...]


@dataclass(frozen=True, slots=True)
class Row:
    """One record of the lineage, with its exact signed line for the browser to check."""

    seq: int | None
    event: str
    title: str
    at: str
    who: tuple[Fact, ...]
    what: tuple[Fact, ...]
    decision: DecisionView | None
    details: tuple[Fact, ...]
    break_glass_path: str  # where the record says so; "" when it is no break-glass record
    line: str  # standard base64 of the exact line, as the log holds it
    text: str  # the line as text, for people to read
    proof: tuple[str, ...] | None = None  # base64 audit path; None when there is none

    @property
    def break_glass(self) -> bool:
        return bool(self.break_glass_path)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The signed checkpoint note every row's inclusion proof leads to."""

    note: str  # standard base64 of the note's UTF-8 bytes (it holds an em dash and newlines)
    size: int


@dataclass(frozen=True, slots=True)
class Gap:
    """Records of the lineage the page leaves out, between two rows it shows."""

    index: int  # the row the gap comes before
    count: int


@dataclass(frozen=True, slots=True)
class LineagePage:
    request_id: str
    status: str
    summary: tuple[Fact, ...]
    rows: tuple[Row, ...]
    checkpoint: Checkpoint | None
    notice: str = ""
    gap: Gap | None = None


def shown_lines(lines: Sequence[bytes]) -> tuple[list[bytes], Gap | None]:
    """The lines one page shows: all of them, or the first ``FIRST_ROWS`` and the last
    ``LAST_ROWS`` with the gap between."""
    if len(lines) <= FIRST_ROWS + LAST_ROWS:
        return list(lines), None
    kept = [*lines[:FIRST_ROWS], *lines[-LAST_ROWS:]]
    return kept, Gap(FIRST_ROWS, len(lines) - len(kept))


def facts(data: Any, spec: Spec) -> tuple[Fact, ...]:
    """The labelled values ``spec`` picks from ``data``, leaving out empty ones."""
    found = []
    for label, path, name in spec:
        if path.startswith("="):
            found.append(Fact(label, text_of(path[1:]), "event"))
            continue
        value = lookup(data, path)
        if not is_empty(value):
            found.append(Fact(label, FORMATS[name](value), f"data.{path}"))
    return tuple(found)


def flatten(data: Any, prefix: str = "") -> tuple[Fact, ...]:
    """Every member of nested objects as ``dotted.name`` facts, at most ``MAX_FACTS``."""
    found: list[Fact] = []
    _flatten_into(found, data, prefix, 0)
    return tuple(found[:MAX_FACTS])


def _flatten_into(found: list[Fact], data: Any, prefix: str, depth: int) -> None:
    if len(found) >= MAX_FACTS:
        return
    if isinstance(data, dict) and data and depth < MAX_DEPTH:
        for name in sorted(data):
            _flatten_into(found, data[name], f"{prefix}.{name}" if prefix else name, depth + 1)
    elif (
        isinstance(data, list)
        and depth < MAX_DEPTH
        and any(isinstance(i, dict | list) for i in data)
    ):
        for index, value in enumerate(data):
            _flatten_into(found, value, f"{prefix}[{index}]", depth + 1)
    else:
        found.append(Fact(shown(prefix or "value"), text_of(data)))


def decision_of(event: str, data: Any) -> DecisionView | None:
    """The policy decision a record states, with its reasons; None for other records."""
    if event == "denied":
        return DecisionView(False, "event", _reasons(data, "reasons"), ())
    if event == "approved" and lookup(data, "by") == "policy":
        return DecisionView(None, "", (), facts(data, APPROVED_BY_POLICY))
    if event not in DECIDED:
        return None
    decision = lookup(data, "decision")
    if not isinstance(decision, dict):
        return DecisionView(None, "", (), ())
    allow = decision.get("allow")
    allow = allow if isinstance(allow, bool) else None
    return DecisionView(
        allow,
        "data.decision.allow" if allow is not None else "",
        _reasons(data, "decision.reasons"),
        _unique(facts(data, DECISION_FACTS)),
    )


def _unique(found: Sequence[Fact]) -> tuple[Fact, ...]:
    """The facts without repeats of a label and value (one policy digest where the record and
    its decision agree), the first of each kept."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for fact in found:
        if (fact.label, fact.value) not in seen:
            seen.add((fact.label, fact.value))
            kept.append(fact)
    return tuple(kept)


def _reasons(data: Any, path: str) -> tuple[Fact, ...]:
    value = lookup(data, path)
    if not isinstance(value, list):
        return () if is_empty(value) else (Fact("", text_of(value), f"data.{path}"),)
    return tuple(Fact("", text_of(item), f"data.{path}[{i}]") for i, item in enumerate(value))


def row_of(line: bytes) -> Row:
    """The timeline row of one signed line, whatever it holds."""
    body = _body(line)
    data = body.get("data")
    event = body.get("event")
    event = event if isinstance(event, str) else ""
    seq = body.get("seq")
    flag = (
        "data.break_glass"
        if lookup(data, "break_glass") is True
        else "break_glass"
        if body.get("break_glass") is True
        else ""
    )
    return Row(
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        event=event,
        title=title_of(event),
        at=text_of(body.get("at")),
        who=facts(data, WHO.get(event, ())),
        what=facts(data, WHAT.get(event, ())),
        decision=decision_of(event, data),
        details=flatten(data),
        break_glass_path=flag,
        line=base64.b64encode(line).decode("ascii"),
        text=line.decode("utf-8", errors="replace"),
    )


def _body(line: bytes) -> dict[str, Any]:
    try:
        body = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return {}
    return body if isinstance(body, dict) else {}


def with_proofs(rows: Sequence[Row], proofs: Mapping[int, Sequence[bytes]]) -> tuple[Row, ...]:
    """The rows, each with its inclusion proof where ``proofs`` has one for its seq."""
    return tuple(
        replace(row, proof=tuple(base64.b64encode(h).decode("ascii") for h in proofs[row.seq]))
        if row.seq is not None and row.seq in proofs
        else row
        for row in rows
    )


_NOT_SUMMARISED = ("request_id", "status")  # both in the page's heading
SUMMARY_ORDER = (
    "subject",
    "requested_by",
    "actors",
    "role",
    "target",
    "credential_type",
    "ttl_seconds",
    "break_glass",
    "created_at",
    "approved_at",
    "issued_at",
    "expires_at",
    "collected_at",
    "revoked_at",
    "revoked_by",
    "review_status",
    "review_due_at",
    "fingerprint",
    "policy_digest",
)


def summary_facts(summary: Mapping[str, Any]) -> tuple[Fact, ...]:
    """The broker's summary of a request, the usual members first, then the rest."""
    first = [name for name in SUMMARY_ORDER if not is_empty(summary.get(name))]
    rest = [name for name in summary if name not in (*SUMMARY_ORDER, *_NOT_SUMMARISED)]
    shown_facts: list[Fact] = []
    for name in first:
        formatter = chain if name == "actors" else seconds if name == "ttl_seconds" else text_of
        shown_facts.append(Fact(name.replace("_", " "), formatter(summary[name])))
    for name in rest:
        shown_facts += [
            replace(f, label=f.label.replace("_", " ")) for f in flatten(summary[name], name)
        ]
    return tuple(fact for fact in shown_facts if fact.value)


def lineage_page(
    request_id: str,
    rows: Sequence[Row],
    *,
    summary: Mapping[str, Any] | None,
    checkpoint: Checkpoint | None,
    proofs: Mapping[int, Sequence[bytes]],
    notice: str = "",
    gap: Gap | None = None,
) -> LineagePage:
    """The whole page: the summary (when the broker holds the request's state) and the rows,
    each with its inclusion proof where ``proofs`` has one."""
    status = text_of(summary.get("status")) if summary else "unknown"
    return LineagePage(
        request_id=request_id,
        status=status or "unknown",
        summary=summary_facts(summary) if summary else (),
        rows=with_proofs(rows, proofs),
        checkpoint=checkpoint,
        notice=notice,
        gap=gap,
    )
