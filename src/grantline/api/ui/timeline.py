"""The lineage page's model: a request's signed record lines turned into timeline rows.

Pure: lines and the request's summary in, frozen rows out. Every value shown comes from records
or request state that callers influence (purpose, reasons, subjects), so it stays plain text
here and the templates escape it. A record of any shape, even one this version does not know,
becomes a row: nothing here raises on record contents.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

MAX_TEXT = 2000  # characters of one value shown; the signed line in full is in the details
MAX_FACTS = 200  # flattened members of one record's details
_MAX_DEPTH = 8
_EMPTY: tuple[object, ...] = (None, "", [], {})


@dataclass(frozen=True, slots=True)
class Fact:
    """One labelled value, as text."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class DecisionView:
    """A policy's answer as a record states it: allowed or not, and why."""

    allow: bool | None  # None: the record states no allow (an approval by policy, say)
    reasons: tuple[str, ...]
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
    break_glass: bool
    line: str  # standard base64 of the exact line, as the log holds it
    text: str  # the line as text, for people to read
    proof: tuple[str, ...] | None = None  # base64 audit path; None when there is none


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The signed checkpoint note every row's inclusion proof leads to."""

    note: str  # standard base64 of the note's UTF-8 bytes (it holds an em dash and newlines)
    size: int


@dataclass(frozen=True, slots=True)
class LineagePage:
    request_id: str
    status: str
    summary: tuple[Fact, ...]
    rows: tuple[Row, ...]
    checkpoint: Checkpoint | None
    notice: str = ""


Format = Callable[[Any], str]
Spec = tuple[tuple[str, str, Format | None], ...]

TITLES = {
    "requested": "Requested",
    "evaluated": "Policy evaluated",
    "denied": "Denied",
    "approval_given": "Approval given",
    "approval_refused": "Approval refused",
    "approved": "Approved",
    "rejected": "Rejected",
    "issued": "Credential issued",
    "collected": "Credential collected",
    "reviewed": "Reviewed",
    "revoked": "Revoked",
    "revocation_failed": "Revocation failed",
    "expired": "Expired",
    "failed": "Failed",
    "notification_failed": "Notification failed",
    "reconciled": "Reconciled",
}


def text_of(value: Any) -> str:
    """A record value as one line of text, cut at ``MAX_TEXT`` characters."""
    return _cut(_plain(value))


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str | int) for item in value):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict) and all(isinstance(item, str | list) for item in value.values()):
        return "; ".join(f"{name}: {_plain(item)}" for name, item in value.items())
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


def _chain(value: Any) -> str:
    """An actor chain (``["agent", "sub-agent"]``) or RFC 8693 ``act`` claim, outermost first."""
    if isinstance(value, list):
        return _cut(" \u2192 ".join(_plain(item) for item in value))
    subjects: list[str] = []
    while isinstance(value, dict) and len(subjects) < _MAX_DEPTH:
        subjects.append(_plain(value.get("sub")))
        value = value.get("act")
    return _cut(" \u2192 ".join(subjects))


def _requirement(value: Any) -> str:
    """``{"all_of": [{"group": "security", "count": 1}]}`` as ``1 of security``."""
    factors = value.get("all_of") if isinstance(value, dict) else None
    if not isinstance(factors, list) or not all(isinstance(f, dict) for f in factors):
        return text_of(value)
    return _cut(", ".join(f"{_plain(f.get('count'))} of {_plain(f.get('group'))}" for f in factors))


def _seconds(value: Any) -> str:
    return (
        f"{value} s" if isinstance(value, int) and not isinstance(value, bool) else text_of(value)
    )


_APPROVER: Spec = (
    ("approver", "approver.subject", None),
    ("approver issuer", "approver.issuer", None),
)
_BY: Spec = (("by", "by", None),)

WHO: dict[str, Spec] = {
    "requested": (
        ("for", "identity.subject", None),
        ("issuer", "identity.issuer", None),
        ("agent", "actor.subject", None),
        ("actor chain", "actor.chain", _chain),
    ),
    "evaluated": (("by", "=policy", None),),
    "denied": (("by", "=policy", None),),
    "approval_given": _APPROVER,
    "approval_refused": _APPROVER,
    "rejected": _APPROVER,
    "approved": (("by", "by", None), ("approvers", "approvers", None)),
    "issued": (("actor", "act", _chain),),
    "collected": _BY,
    "reviewed": _BY,
    "revoked": (("by", "by", None), ("source", "source", None)),
    "revocation_failed": (("by", "by", None), ("source", "source", None)),
}

WHAT: dict[str, Spec] = {
    "requested": (
        ("target", "request.target", None),
        ("role", "request.role", None),
        ("TTL", "request.ttl_seconds", _seconds),
        ("credential type", "request.credential_type", None),
        ("purpose", "request.purpose", None),
        ("ticket", "request.ticket", None),
        ("break-glass justification", "request.justification", None),
        ("agent goal", "request.agent.goal", None),
        ("agent tool", "request.agent.tool", None),
        ("prompt digest", "request.agent.prompt_sha256", None),
        ("key thumbprint", "request.public_key_thumbprint", None),
    ),
    "approval_given": (("reason", "reason", None), ("counts for", "groups", None)),
    "approval_refused": (("action", "action", None), ("reason", "reason", None)),
    "rejected": (("reason", "reason", None),),
    "approved": (
        ("requirement", "requirement", _requirement),
        ("rule", "rule", None),
        ("justification", "justification", None),
        ("review due", "review_due_at", None),
    ),
    "issued": (
        ("credential type", "credential_type", None),
        ("fingerprint", "fingerprint", None),
        ("issued at", "issued_at", None),
        ("expires at", "expires_at", None),
        ("handle", "handle", None),
        ("bound to key", "cnf.jkt", None),
    ),
    "reviewed": (("reason", "reason", None),),
    "revoked": (("reason", "reason", None),),
    "revocation_failed": (("reason", "reason", None), ("error", "error.message", None)),
    "expired": (("phase", "phase", None), ("deadline", "deadline", None)),
    "failed": (("code", "code", None), ("message", "message", None)),
    "notification_failed": (
        ("about", "event", None),
        ("attempts", "attempts", None),
        ("error", "error", None),
    ),
    "reconciled": (("finding", "finding", None), ("action", "action", None)),
}


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` in nested objects, or None where there is none."""
    for name in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def facts(data: Any, spec: Spec) -> tuple[Fact, ...]:
    """The labelled values ``spec`` picks from ``data``, leaving out empty ones.

    A path starting with ``=`` is a constant (who evaluates a policy: the policy).
    """
    found = []
    for label, path, formatter in spec:
        value = path[1:] if path.startswith("=") else lookup(data, path)
        if value in _EMPTY:
            continue
        found.append(Fact(label, (formatter or text_of)(value)))
    return tuple(found)


def flatten(data: Any, prefix: str = "") -> tuple[Fact, ...]:
    """Every member of nested objects as ``dotted.name`` facts, at most ``MAX_FACTS``."""
    found: list[Fact] = []
    _flatten_into(found, data, prefix, 0)
    return tuple(found[:MAX_FACTS])


def _flatten_into(found: list[Fact], data: Any, prefix: str, depth: int) -> None:
    if len(found) >= MAX_FACTS:
        return
    if isinstance(data, dict) and data and depth < _MAX_DEPTH:
        for name, value in data.items():
            _flatten_into(found, value, f"{prefix}.{name}" if prefix else str(name), depth + 1)
    elif isinstance(data, list) and any(isinstance(i, dict | list) for i in data):
        for index, value in enumerate(data):
            _flatten_into(found, value, f"{prefix}[{index}]", depth + 1)
    else:
        found.append(Fact(prefix or "value", text_of(data)))


def decision_of(event: str, data: Any) -> DecisionView | None:
    """The policy decision a record states, with its reasons; None for other records."""
    if event == "denied":
        return DecisionView(False, _strings(lookup(data, "reasons")), ())
    if event == "approved" and lookup(data, "by") == "policy":
        spec: Spec = (("rule", "rule", None), ("policy", "policy_digest", None))
        return DecisionView(None, (), facts(data, spec))
    decision = lookup(data, "decision")
    if event not in ("evaluated", "approval_given", "approval_refused", "rejected"):
        return None
    if not isinstance(decision, dict):
        return DecisionView(None, (), ())
    allow = decision.get("allow")
    details: Spec = (
        ("approval required", "decision.require_approval", None),
        ("rule", "decision.rule", None),
        ("policy", "policy_digest", None),
        ("policy", "decision.policy_digest", None),
        ("input digest", "input_digest", None),
    )
    found = tuple(dict.fromkeys(facts(data, details)))  # one policy digest where both agree
    return DecisionView(
        allow if isinstance(allow, bool) else None, _strings(decision.get("reasons")), found
    )


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return () if value in _EMPTY else (text_of(value),)
    return tuple(text_of(item) for item in value)


def row_of(line: bytes) -> Row:
    """The timeline row of one signed line, whatever it holds."""
    body = _body(line)
    data = body.get("data")
    event = body.get("event")
    event = event if isinstance(event, str) else ""
    seq = body.get("seq")
    return Row(
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        event=event,
        title=TITLES.get(event, event.replace("_", " ").capitalize() or "Unreadable record"),
        at=text_of(body.get("at")),
        who=facts(data, WHO.get(event, ())),
        what=facts(data, WHAT.get(event, ())),
        decision=decision_of(event, data),
        details=flatten(data),
        break_glass=lookup(data, "break_glass") is True or body.get("break_glass") is True,
        line=base64.b64encode(line).decode("ascii"),
        text=line.decode("utf-8", errors="replace"),
    )


def _body(line: bytes) -> dict[str, Any]:
    try:
        body = json.loads(line)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
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
    first = [name for name in SUMMARY_ORDER if summary.get(name) not in _EMPTY]
    rest = [name for name in summary if name not in (*SUMMARY_ORDER, *_NOT_SUMMARISED)]
    shown: list[Fact] = []
    for name in first:
        formatter = _chain if name == "actors" else _seconds if name == "ttl_seconds" else text_of
        shown.append(Fact(name.replace("_", " "), formatter(summary[name])))
    for name in rest:
        shown += [replace(f, label=f.label.replace("_", " ")) for f in flatten(summary[name], name)]
    return tuple(fact for fact in shown if fact.value)


def lineage_page(
    request_id: str,
    rows: Sequence[Row],
    *,
    summary: Mapping[str, Any] | None,
    checkpoint: Checkpoint | None,
    proofs: Mapping[int, Sequence[bytes]],
    notice: str = "",
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
    )
