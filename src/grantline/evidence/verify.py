"""The offline verifier of an export: signatures, chain, checkpoint and lineage rules, streamed.

Every problem becomes a :class:`Finding`; verification goes on to the end so a report lists
everything. State is the chain position plus one small integer per request id seen.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.evidence.checkpoint import Checkpoint
from grantline.evidence.examine import CHECKPOINT, MALFORMED, Examined, examine
from grantline.evidence.merkle import frontier_append, frontier_root
from grantline.evidence.note import CheckpointNote
from grantline.evidence.record import (
    GENESIS,
)

# integrity: the evidence itself; lineage: a request's records out of order or missing;
# policy: a control that the records show was not honoured (a break-glass grant unreviewed).
Category = Literal["integrity", "lineage", "policy"]

_UNAUTHENTICATED = frozenset({"unknown_kid", "bad_signature"})

# Lineage facts kept per request id, as bits of one integer.
_REQUESTED, _ALLOWED, _DENIED, _ISSUED, _REVOKED = 1, 2, 4, 8, 16
_NEEDS_APPROVAL, _APPROVED, _APPROVAL_GIVEN, _COLLECTED = 32, 64, 128, 256
_FACT_OF_EVENT = {
    "requested": _REQUESTED,
    "denied": _DENIED,
    "issued": _ISSUED,
    "revoked": _REVOKED,
    "approved": _APPROVED,
    "approval_given": _APPROVAL_GIVEN,
    "collected": _COLLECTED,
}
_ISSUANCE_RULES: tuple[tuple[int, bool, str, str], ...] = (
    # (fact, must the fact hold?, finding code, what is wrong)
    (_REQUESTED, True, "issued_without_request", "no earlier 'requested' record"),
    (_ALLOWED, True, "issued_without_allow", "no earlier 'evaluated' record with allow: true"),
    (_DENIED, False, "issued_after_denied", "the request was denied earlier"),
    (_REVOKED, False, "issued_after_revoked", "the request was revoked earlier"),
    (_ISSUED, False, "issued_twice", "the request was already issued"),
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: ``code`` is stable for tools, ``message`` is for people.

    ``seq`` is the sequence number the problem is attached to (for an unreadable line, the
    number expected at that position), ``line`` the 1-based line number in the export.
    """

    category: Category
    code: str
    seq: int | None
    request_id: str | None
    message: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of verifying one export."""

    records: int
    findings: tuple[Finding, ...]
    checkpoint: Checkpoint | None
    # What the records say of use: used and outcome records, grants used, uses, uses after
    # their grant ended (docs/usage.md).
    usage: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def counts(self) -> Counter[tuple[str, str]]:
        """Findings by (category, code)."""
        return Counter((finding.category, finding.code) for finding in self.findings)

    def to_json(self) -> str:
        """The report as one JSON object: ok, records, checkpoint, counts (category -> code
        -> number), findings."""
        counts: dict[str, dict[str, int]] = {}
        for (category, code), count in self.counts().items():
            counts.setdefault(category, {})[code] = count
        return json.dumps(
            {
                "ok": self.ok,
                "records": self.records,
                "checkpoint": asdict(self.checkpoint) if self.checkpoint else None,
                "counts": counts,
                "usage": dict(self.usage),
                "findings": [asdict(finding) for finding in self.findings],
            },
            sort_keys=True,
        )


def verify_export(
    lines: Iterable[bytes],
    keys: Mapping[str, Ed25519PublicKey],
    against: CheckpointNote | None = None,
) -> VerifyReport:
    """Verify an export, one line at a time; never raises for anything found in ``lines``.

    ``against`` is a checkpoint the auditor kept from earlier (already verified): the export's
    first ``against.size`` records must hash to its Merkle root, or history was rewritten.
    A trailing LF (or CRLF) on a line is a line terminator, not part of the line.
    """
    verifier = Verifier(keys, against)
    for raw in lines:
        verifier.feed(raw)
    return verifier.finish()


class Verifier:
    def __init__(
        self, keys: Mapping[str, Ed25519PublicKey], against: CheckpointNote | None = None
    ) -> None:
        self._keys = keys
        self._against = against
        # The Merkle tree of the record lines so far, as its perfect subtrees.
        self._frontier: list[bytes] = []
        self._findings: list[Finding] = []
        self._line_no = 0
        self._records = 0
        self._expected_seq = 1
        self._prev = GENESIS
        self._checkpoint: Checkpoint | None = None
        self._first_unchecked: int | None = None
        self._facts: dict[str, int] = {}
        # Who asked (the principal and every actor), kept only while a request waits for
        # approvers: none of them may approve it.
        self._parties: dict[str, frozenset[str]] = {}
        # Who gave an approval, while the request waits: each approver an approved
        # record counts must be among them.
        self._approvers: dict[str, set[str]] = {}
        # Break-glass grants without a review yet: request id -> (review due, seq).
        self._reviews_due: dict[str, tuple[str, int]] = {}
        self._last_at = ""
        self._usage: Counter[str] = Counter()
        self._used: set[str] = set()

    def feed(self, raw: bytes) -> None:
        self.accept(examine(raw, self._keys))

    def accept(self, line: Examined) -> None:
        """Take the next line, already examined on its own (evidence/examine.py)."""
        self._line_no += 1
        if line.kind == MALFORMED:
            # Most likely a damaged record: count it so the positions after it stay aligned.
            self._flag(line.code or "malformed_line", self._expected_seq, line.message)
            self._advance(line, None)
        elif line.kind == CHECKPOINT:
            self._feed_checkpoint(line)
        else:
            self._feed_record(line)

    def finish(self) -> VerifyReport:
        self._check_reviews()
        if self._against is not None and self._records < self._against.size:
            message = (
                f"the export holds {self._records} records, fewer than the "
                f"{self._against.size} of the kept checkpoint"
            )
            self._flag("export_behind_checkpoint", self._records + 1, message)
        if self._checkpoint is None:
            self._flag("checkpoint_missing", None, "no valid checkpoint: a cut tail would not show")
        elif self._first_unchecked is not None:
            self._flag(
                "records_after_checkpoint",
                self._first_unchecked,
                "records follow the last checkpoint: nothing proves the log ended there",
            )
        usage = {**self._usage, "grants_used": len(self._used)} if self._usage else {}
        return VerifyReport(self._records, tuple(self._findings), self._checkpoint, usage)

    def _feed_record(self, line: Examined) -> None:
        if line.code in _UNAUTHENTICATED:
            # Nothing in the line is trustworthy, not even its seq: name it by its position.
            self._flag(line.code or "", self._expected_seq, line.message)
            self._advance(line, None)
            return
        seq, request_id = line.seq, line.request_id
        if line.code is not None:
            at = self._expected_seq if seq is None else seq
            self._flag(line.code, at, line.message, request_id=request_id)
        self._check_links(seq, line.prev, request_id)
        if line.code is None and seq is not None:
            self._check_lineage(line, seq)
        self._advance(line, seq)

    def _check_links(self, seq: int | None, prev: object, request_id: str | None) -> None:
        expected = self._expected_seq
        if seq is not None and seq != expected:
            # Named by the seq that should be here: for a deleted record, the missing one.
            message = f"expected seq {expected}, found {seq}"
            self._flag("seq_gap", expected, message, request_id=request_id)
        if prev != self._prev:
            before = "the genesis value" if self._records == 0 else "the hash of the line before"
            message = f"prev is not {before} ({self._prev}), found {_shown(prev)}"
            self._flag(
                "chain_break", expected if seq is None else seq, message, request_id=request_id
            )

    def _advance(self, line: Examined, seq: int | None) -> None:
        # Resynchronise on what was actually seen, so that one break is reported once.
        frontier_append(self._records, self._frontier, line.leaf)
        self._records += 1
        if self._against is not None and self._records == self._against.size:
            self._compare_kept(self._against)
        self._prev = line.chain
        position = self._expected_seq if seq is None else seq
        self._expected_seq = position + 1
        if self._first_unchecked is None:
            self._first_unchecked = position

    def _feed_checkpoint(self, line: Examined) -> None:
        checkpoint = line.checkpoint
        if checkpoint is None:
            self._flag(line.code or "invalid_field", None, f"checkpoint: {line.message}")
            return
        self._compare_checkpoint(checkpoint)
        self._checkpoint = checkpoint
        self._first_unchecked = None

    def _damaged_records(self) -> bool:
        # A damaged record changes the Merkle root too: the damage is reported once, as such.
        return any(f.category == "integrity" and f.seq is not None for f in self._findings)

    def _compare_kept(self, kept: CheckpointNote) -> None:
        if frontier_root(self._frontier) != kept.root:
            message = (
                f"the first {kept.size} records do not hash to the root of the checkpoint kept "
                "at that size: records it covered were changed, removed or reordered"
            )
            self._flag("history_rewritten", kept.size, message)

    def _compare_checkpoint(self, checkpoint: Checkpoint) -> None:
        size, records = checkpoint.size, self._records
        if size > records:
            message = f"the checkpoint covers {size} records but only {records} precede it"
            self._flag("truncated", records + 1, message)
        elif size < records:
            message = f"the checkpoint covers {size} records but {records} precede it"
            self._flag("checkpoint_mismatch", size + 1, message)
        elif checkpoint.head != self._prev:
            message = f"the checkpoint head {checkpoint.head} is not the hash of the last record"
            self._flag("checkpoint_mismatch", records or None, message)
        elif (
            checkpoint.root is not None
            and not self._damaged_records()
            and checkpoint.root != _b64(frontier_root(self._frontier))
        ):
            message = "the checkpoint's Merkle root is not the root of the records before it"
            self._flag("checkpoint_mismatch", records or None, message)

    def _check_lineage(self, line: Examined, seq: int) -> None:
        request_id, event, data = line.request_id or "", line.event, line.data or {}
        self._last_at = line.at
        facts = self._facts.get(request_id, 0)
        if event == "issued":
            for fact, required, code, problem in _ISSUANCE_RULES:
                if bool(facts & fact) != required:
                    message = f"issued, but {problem}"
                    self._flag(code, seq, message, request_id=request_id, category="lineage")
            if facts & _NEEDS_APPROVAL and not facts & _APPROVED:
                message = (
                    "issued, but the policy required approval and no 'approved' record precedes it"
                )
                self._flag(
                    "issued_without_approval",
                    seq,
                    message,
                    request_id=request_id,
                    category="lineage",
                )
        if event in ("used", "outcome"):
            self._check_use(request_id, event, data, facts, seq)
        self._check_approvals(request_id, event, data, facts, seq)
        facts |= _fact_of(event, data)
        if facts:
            self._facts[request_id] = facts

    def _check_use(
        self, request_id: str, event: str, data: Mapping[str, Any], facts: int, seq: int
    ) -> None:
        """A use or an outcome is of a credential: an ``issued`` record must come first."""
        if not facts & _ISSUED:
            message = f"{event} record, but no earlier 'issued' record: no credential to use"
            self._flag(
                f"{event}_without_issue", seq, message, request_id=request_id, category="lineage"
            )
        self._usage[f"{event}_records"] += 1
        if event == "used":
            self._used.add(request_id)
            for name in ("count", "after_end"):
                value = data.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    self._usage["uses" if name == "count" else name] += value

    def _check_approvals(
        self, request_id: str, event: str, data: Mapping[str, Any], facts: int, seq: int
    ) -> None:
        if event == "requested":
            self._parties[request_id] = _parties(data)
        elif event == "evaluated" and not _fact_of(event, data) & _NEEDS_APPROVAL:
            self._parties.pop(request_id, None)
        elif event == "approval_given":
            self._check_approval_given(request_id, data, seq)
        elif event == "approved":
            self._check_approved(request_id, data, facts, seq)
        elif event == "reviewed":
            self._reviews_due.pop(request_id, None)
        elif event == "collected":
            self._check_collected(request_id, facts, seq)

    def _check_approval_given(self, request_id: str, data: Mapping[str, Any], seq: int) -> None:
        approver = data.get("approver")
        subject = approver.get("subject") if isinstance(approver, dict) else None
        if subject in self._parties.get(request_id, frozenset()):
            message = f"{subject} approved a request they asked for or are party to"
            self._flag("self_approval", seq, message, request_id=request_id, category="lineage")
        if isinstance(subject, str):
            self._approvers.setdefault(request_id, set()).add(subject)

    def _check_collected(self, request_id: str, facts: int, seq: int) -> None:
        if not facts & _ISSUED:
            code, message = (
                "collected_before_issued",
                "collected, but no 'issued' record precedes it",
            )
        elif facts & _COLLECTED:
            code, message = "collected_twice", "the credential was collected twice"
        else:
            return
        self._flag(code, seq, message, request_id=request_id, category="lineage")

    def _check_approved(
        self, request_id: str, data: Mapping[str, Any], facts: int, seq: int
    ) -> None:
        by = data.get("by")
        given = self._approvers.pop(request_id, set())
        self._parties.pop(request_id, None)
        if by == "approvers":
            for code, problem in _quorum_problems(data, given):
                self._flag(code, seq, problem, request_id=request_id, category="lineage")
            if not facts & _APPROVAL_GIVEN and not given:
                message = "approved by approvers, but no 'approval_given' record precedes it"
                self._flag(
                    "approved_without_approvals",
                    seq,
                    message,
                    request_id=request_id,
                    category="lineage",
                )
        due = data.get("review_due_at")
        if by == "break_glass" and isinstance(due, str):
            self._reviews_due[request_id] = (due, seq)

    def _check_reviews(self) -> None:
        """Break-glass grants whose review was due by the time the export was signed."""
        now = self._checkpoint.at if self._checkpoint is not None else self._last_at
        for request_id, (due, seq) in sorted(self._reviews_due.items(), key=lambda i: i[1][1]):
            if due <= now:
                message = f"break-glass grant with no review; it was due by {due}"
                self._flag(
                    "break_glass_unreviewed", seq, message, request_id=request_id, category="policy"
                )

    def _flag(
        self,
        code: str,
        seq: int | None,
        message: str,
        *,
        request_id: str | None = None,
        category: Category = "integrity",
    ) -> None:
        self._findings.append(Finding(category, code, seq, request_id, message, self._line_no))


def _fact_of(event: str, data: Mapping[str, Any]) -> int:
    if event == "evaluated":
        decision = data.get("decision")
        if not isinstance(decision, dict) or decision.get("allow") is not True:
            return 0
        return _ALLOWED | (_NEEDS_APPROVAL if decision.get("require_approval") is True else 0)
    return _FACT_OF_EVENT.get(event, 0)


def _quorum_problems(data: Mapping[str, Any], given: set[str]) -> list[tuple[str, str]]:
    """What is wrong with the quorum an ``approved`` record claims (empty: nothing)."""
    counted = data.get("approvers")
    factors = (
        data.get("requirement", {}).get("all_of")
        if isinstance(data.get("requirement"), dict)
        else None
    )
    if not given:
        return []  # approved_without_approvals says it
    if not isinstance(counted, dict) or not isinstance(factors, list):
        return [("quorum_not_met", "approved by approvers without naming them and the requirement")]
    problems = []
    names = [name for group in counted.values() if isinstance(group, list) for name in group]
    for name in sorted(set(names) - given):
        problems.append(("approver_without_approval", f"{name} is counted but gave no approval"))
    if len(names) != len(set(names)):
        problems.append(("quorum_not_met", "an approver is counted more than once"))
    for factor in factors:
        group = factor.get("group") if isinstance(factor, dict) else None
        need = factor.get("count") if isinstance(factor, dict) else None
        held = counted.get(group) if isinstance(group, str) else None
        if not isinstance(need, int) or not isinstance(held, list) or len(held) < need:
            problems.append(("quorum_not_met", f"the factor {group} is not met: {held} of {need}"))
    return problems


def _parties(requested: Mapping[str, Any]) -> frozenset[str]:
    identity = requested.get("identity")
    actor = requested.get("actor")
    parties = {identity.get("subject")} if isinstance(identity, dict) else set()
    chain = actor.get("chain") if isinstance(actor, dict) else None
    if isinstance(chain, list):
        parties.update(chain)
    return frozenset(p for p in parties if isinstance(p, str))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
