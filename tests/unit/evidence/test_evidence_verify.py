"""The offline verifier: a valid export passes; each tampering and lineage violation is named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from evidence_support import (
    ALLOWED,
    DENIED_DECISION,
    ISSUED,
    KEYS,
    OTHER_SIGNER,
    REQUESTED,
    REVOKED,
    SIGNER,
    T0,
    checkpoint_over,
    export,
    records,
)

from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.record import chain_hash
from grantline.evidence.verify import Finding, VerifyReport, verify_export

RECORDS = len(export()) - 1


def _verify(lines: list[bytes]) -> VerifyReport:
    return verify_export(lines, KEYS)


def _codes(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(finding.code, finding.seq) for finding in report.findings]


def _flip(line: bytes, index: int) -> bytes:
    return line[:index] + bytes([line[index] ^ 0x01]) + line[index + 1 :]


def test_a_valid_export_verifies_with_no_findings() -> None:
    report = _verify(export())
    assert report.ok
    assert report.findings == ()
    assert report.records == RECORDS
    assert report.checkpoint is not None
    assert report.checkpoint.size == RECORDS


def test_lines_may_end_with_lf_or_crlf() -> None:
    lines = export()
    assert _verify([line + b"\n" for line in lines]).ok
    assert _verify([line + b"\r\n" for line in lines]).ok


def test_an_export_of_an_empty_log_is_just_a_checkpoint_of_size_0() -> None:
    report = _verify([checkpoint_over(ChainHead.genesis())])
    assert report.ok
    assert report.records == 0


def test_earlier_checkpoints_between_records_are_checked_where_they_stand() -> None:
    lines, head = records()
    middle = ChainHead(3, chain_hash(lines[2]))
    assert _verify([*lines[:3], checkpoint_over(middle), *lines[3:], checkpoint_over(head)]).ok


def test_a_verifier_reads_lines_one_at_a_time_from_any_iterable() -> None:
    assert verify_export(iter(export()), KEYS).ok


def test_a_changed_byte_in_a_record_is_a_bad_signature_at_that_seq_then_a_chain_break() -> None:
    lines = export()
    lines[2] = lines[2].replace(b"db-read", b"db-admin")
    assert _codes(_verify(lines)) == [("bad_signature", 3), ("chain_break", 4)]


def test_a_changed_seq_is_named_by_its_position_not_by_the_forged_number() -> None:
    lines = export()
    lines[2] = lines[2].replace(b'"seq":3', b'"seq":9')
    assert _codes(_verify(lines)) == [("bad_signature", 3), ("chain_break", 4)]


def test_a_changed_byte_in_the_last_record_is_caught_by_the_checkpoint_head() -> None:
    lines = export()
    lines[-2] = lines[-2].replace(b'"reason":"done"', b'"reason":"dune"')
    assert _codes(_verify(lines)) == [("bad_signature", RECORDS), ("checkpoint_mismatch", RECORDS)]


@pytest.mark.parametrize("record", range(RECORDS))
def test_every_single_bit_flip_in_a_record_is_caught_and_named_at_that_seq(record: int) -> None:
    lines = export()
    for index in range(0, len(lines[record]), 7):
        tampered = list(lines)
        tampered[record] = _flip(lines[record], index)
        report = _verify(tampered)
        assert not report.ok
        assert report.findings[0].seq == record + 1, (index, report.findings)


def test_a_deleted_record_is_a_seq_gap_naming_the_missing_seq() -> None:
    lines = export()
    del lines[3]
    assert _codes(_verify(lines)) == [
        ("seq_gap", 4),
        ("chain_break", 5),
        ("truncated", RECORDS),
    ]


def test_an_inserted_foreign_record_is_an_unknown_kid_then_a_break_in_the_chain() -> None:
    lines = export()
    forged, _ = seal_next(
        ChainHead(3, chain_hash(lines[2])),
        request_id="req-x",
        event="issued",
        at=T0,
        data=ISSUED,
        signer=OTHER_SIGNER,
    )
    lines.insert(3, forged)
    assert _codes(_verify(lines)) == [
        ("unknown_kid", 4),
        ("seq_gap", 5),
        ("chain_break", 4),
        ("checkpoint_mismatch", RECORDS + 1),
    ]


def test_a_replayed_copy_of_a_valid_record_is_a_seq_gap_and_a_chain_break() -> None:
    lines = export()
    lines.insert(3, lines[2])
    codes = _codes(_verify(lines))
    assert codes[:2] == [("seq_gap", 4), ("chain_break", 3)]


def test_reordered_records_are_seq_gaps_from_the_first_moved_seq() -> None:
    lines = export()
    lines[2], lines[3] = lines[3], lines[2]
    codes = _codes(_verify(lines))
    assert codes[0] == ("seq_gap", 3)
    assert ("chain_break", 4) in codes
    assert ("chain_break", 3) in codes


def test_a_tail_cut_before_the_checkpoint_is_truncated_from_the_first_missing_seq() -> None:
    lines = export()
    del lines[-3:-1]
    assert _codes(_verify(lines)) == [("truncated", RECORDS - 1)]


def test_an_export_without_a_checkpoint_is_reported() -> None:
    report = _verify(export()[:-1])
    assert _codes(report) == [("checkpoint_missing", None)]
    assert report.records == RECORDS


def test_an_empty_export_has_a_missing_checkpoint() -> None:
    assert _codes(_verify([])) == [("checkpoint_missing", None)]


def test_records_after_the_last_checkpoint_are_reported_from_the_first_unchecked_seq() -> None:
    lines, _ = records()
    middle = ChainHead(3, chain_hash(lines[2]))
    report = _verify([*lines[:3], checkpoint_over(middle), *lines[3:]])
    assert _codes(report) == [("records_after_checkpoint", 4)]


def test_a_checkpoint_over_a_different_head_is_a_mismatch() -> None:
    lines, head = records()
    other = checkpoint_over(ChainHead(head.seq, chain_hash(b"another history")))
    assert _codes(_verify([*lines, other])) == [("checkpoint_mismatch", RECORDS)]


def test_a_checkpoint_smaller_than_the_records_before_it_is_a_mismatch() -> None:
    lines, _ = records()
    early = checkpoint_over(ChainHead(2, chain_hash(lines[1])))
    assert _codes(_verify([*lines, early])) == [("checkpoint_mismatch", 3)]


def test_a_checkpoint_by_a_foreign_key_does_not_count_as_a_checkpoint() -> None:
    lines, head = records()
    report = _verify([*lines, checkpoint_over(head, OTHER_SIGNER)])
    assert _codes(report) == [("unknown_kid", None), ("checkpoint_missing", None)]
    assert report.checkpoint is None


def test_a_whole_export_signed_by_a_foreign_key_fails_on_every_line() -> None:
    lines, head = records(signer=OTHER_SIGNER)
    report = _verify([*lines, checkpoint_over(head, OTHER_SIGNER)])
    assert [code for code, _ in _codes(report)] == ["unknown_kid"] * (RECORDS + 1) + [
        "checkpoint_missing"
    ]


def test_a_garbage_line_is_malformed_and_verification_goes_on() -> None:
    lines = export()
    lines[1] = b"not json at all"
    # The garbage replaced req-a's evaluation, so its issuance now lacks an allow as well.
    assert _codes(_verify(lines)) == [
        ("malformed_line", 2),
        ("chain_break", 3),
        ("issued_without_allow", 4),
    ]


def test_an_empty_line_is_malformed() -> None:
    lines = export()
    lines.insert(2, b"\n")
    assert _codes(_verify(lines))[0] == ("malformed_line", 3)


def _export(*events: tuple[str, str, dict[str, Any]]) -> list[bytes]:
    return export(tuple(events))


def _lineage(report: VerifyReport) -> list[tuple[str, int | None, str | None]]:
    assert all(f.category == "lineage" for f in report.findings), report.findings
    return [(f.code, f.seq, f.request_id) for f in report.findings]


def test_issued_without_requested_is_a_lineage_finding() -> None:
    report = _verify(_export(("r", "evaluated", ALLOWED), ("r", "issued", ISSUED)))
    assert _lineage(report) == [("issued_without_request", 2, "r")]


def test_issued_without_an_allowing_evaluation_is_a_lineage_finding() -> None:
    report = _verify(_export(("r", "requested", REQUESTED), ("r", "issued", ISSUED)))
    assert _lineage(report) == [("issued_without_allow", 2, "r")]


def test_issued_after_a_denying_evaluation_only_is_a_lineage_finding() -> None:
    report = _verify(
        _export(
            ("r", "requested", REQUESTED),
            ("r", "evaluated", DENIED_DECISION),
            ("r", "issued", ISSUED),
        )
    )
    assert _lineage(report) == [("issued_without_allow", 3, "r")]


def test_an_allow_that_is_not_literally_true_does_not_count() -> None:
    truthy = {**ALLOWED, "decision": {"allow": "true", "reasons": []}}
    report = _verify(
        _export(("r", "requested", REQUESTED), ("r", "evaluated", truthy), ("r", "issued", ISSUED))
    )
    assert _lineage(report) == [("issued_without_allow", 3, "r")]


def test_an_allow_for_another_request_does_not_count() -> None:
    report = _verify(
        _export(
            ("r", "requested", REQUESTED),
            ("other", "evaluated", ALLOWED),
            ("r", "issued", ISSUED),
        )
    )
    assert _lineage(report) == [("issued_without_allow", 3, "r")]


def test_issued_after_revoked_is_a_lineage_finding() -> None:
    report = _verify(
        _export(
            ("r", "requested", REQUESTED),
            ("r", "evaluated", ALLOWED),
            ("r", "revoked", REVOKED),
            ("r", "issued", ISSUED),
        )
    )
    assert _lineage(report) == [("issued_after_revoked", 4, "r")]


def test_issued_after_denied_is_a_lineage_finding() -> None:
    report = _verify(
        _export(
            ("r", "requested", REQUESTED),
            ("r", "evaluated", ALLOWED),
            ("r", "denied", {"reasons": ["approval rejected"]}),
            ("r", "issued", ISSUED),
        )
    )
    assert _lineage(report) == [("issued_after_denied", 4, "r")]


def test_a_second_issuance_for_one_request_is_a_lineage_finding() -> None:
    report = _verify(
        _export(
            ("r", "requested", REQUESTED),
            ("r", "evaluated", ALLOWED),
            ("r", "issued", ISSUED),
            ("r", "issued", ISSUED),
        )
    )
    assert _lineage(report) == [("issued_twice", 4, "r")]


def test_unknown_event_kinds_are_accepted_and_only_chained() -> None:
    assert _verify(_export(("r", "reconciled", {"finding": "x"}), ("", "renewed", {}))).ok


def test_a_use_or_outcome_needs_an_earlier_issue_and_uses_are_counted() -> None:
    used = {"count": 3, "after_end": 1}
    issued = [("r", "requested", REQUESTED), ("r", "evaluated", ALLOWED), ("r", "issued", ISSUED)]
    report = _verify(_export(*issued, ("r", "used", used), ("r", "outcome", {"result": "ok"})))
    assert report.ok
    assert report.usage == {
        "used_records": 1,
        "uses": 3,
        "after_end": 1,
        "outcome_records": 1,
        "grants_used": 1,
    }
    early = _verify(_export(("q", "requested", REQUESTED), ("q", "used", used)))
    assert _codes(early) == [("used_without_issue", 2)]


def test_a_record_that_fails_its_signature_feeds_no_lineage_rule() -> None:
    lines = _export(
        ("r", "requested", REQUESTED), ("r", "evaluated", ALLOWED), ("r", "issued", ISSUED)
    )
    lines[1] = lines[1].replace(b'"allow":true', b'"allow":false')
    assert _codes(_verify(lines)) == [
        ("bad_signature", 2),
        ("chain_break", 3),
        ("issued_without_allow", 3),
    ]


def test_findings_carry_category_code_seq_request_id_message_and_line() -> None:
    lines = _export(("r", "requested", REQUESTED), ("r", "issued", ISSUED))
    (finding,) = _verify(lines).findings
    assert finding == Finding(
        category="lineage",
        code="issued_without_allow",
        seq=2,
        request_id="r",
        message=finding.message,
        line=2,
    )
    assert "evaluated" in finding.message


def test_to_json_gives_tools_the_whole_report() -> None:
    lines = export()
    del lines[-1]
    report = json.loads(_verify(lines).to_json())
    assert report["ok"] is False
    assert report["records"] == RECORDS
    assert report["checkpoint"] is None
    assert report["findings"][0]["code"] == "checkpoint_missing"
    assert set(report["findings"][0]) == {
        "category",
        "code",
        "seq",
        "request_id",
        "message",
        "line",
    }


def test_to_json_of_a_valid_export_includes_the_checkpoint() -> None:
    report = json.loads(_verify(export()).to_json())
    assert report["ok"] is True
    assert report["checkpoint"]["kid"] == SIGNER.kid


PENDING = {
    **ALLOWED,
    "decision": {"allow": True, "reasons": [], "require_approval": True},
}
ASKED = {**REQUESTED, "actor": {"subject": "agent", "chain": ["agent"]}}
ONE_OF_SECURITY = {"all_of": [{"group": "security", "count": 1}]}


def _approved_by(*approvers: str) -> dict[str, Any]:
    return {
        "by": "approvers",
        "approvers": {"security": list(approvers)},
        "requirement": ONE_OF_SECURITY,
    }


def _policy_codes(report: VerifyReport) -> list[tuple[str, str, int | None]]:
    return [(f.category, f.code, f.seq) for f in report.findings]


def test_issuing_a_request_that_needed_approval_without_an_approved_record_is_a_finding() -> None:
    report = _verify(
        _export(("r", "requested", REQUESTED), ("r", "evaluated", PENDING), ("r", "issued", ISSUED))
    )
    assert _lineage(report) == [("issued_without_approval", 3, "r")]


def test_a_quorum_approval_with_no_approvals_is_a_finding() -> None:
    report = _verify(
        _export(
            ("r", "requested", REQUESTED),
            ("r", "evaluated", PENDING),
            ("r", "approved", {"by": "approvers", "approvers": {}}),
            ("r", "issued", ISSUED),
        )
    )
    assert _lineage(report) == [("approved_without_approvals", 3, "r")]


@pytest.mark.parametrize("approver", ["spiffe://example.org/ci-runner", "agent"])
def test_an_approval_by_the_requester_or_its_agent_is_a_finding(approver: str) -> None:
    report = _verify(
        _export(
            ("r", "requested", ASKED),
            ("r", "evaluated", PENDING),
            ("r", "approval_given", {"approver": {"subject": approver}}),
            ("r", "approved", _approved_by(approver)),
            ("r", "issued", ISSUED),
        )
    )
    assert _lineage(report) == [("self_approval", 3, "r")]


def test_an_approved_request_by_someone_else_verifies() -> None:
    report = _verify(
        _export(
            ("r", "requested", ASKED),
            ("r", "evaluated", PENDING),
            ("r", "approval_given", {"approver": {"subject": "user:sam"}}),
            ("r", "approved", _approved_by("user:sam")),
            ("r", "issued", ISSUED),
            ("r", "collected", {"by": "agent"}),
        )
    )
    assert report.ok, report.findings


@pytest.mark.parametrize(
    ("approved", "code"),
    [
        (_approved_by(), "quorum_not_met"),
        (_approved_by("user:sam", "user:eve"), "approver_without_approval"),
        (
            {**_approved_by("user:sam"), "approvers": {"security": ["user:sam", "user:sam"]}},
            "quorum_not_met",
        ),
    ],
)
def test_an_approved_record_must_name_a_real_quorum(approved: dict[str, Any], code: str) -> None:
    report = _verify(
        _export(
            ("r", "requested", REQUESTED),
            ("r", "evaluated", PENDING),
            ("r", "approval_given", {"approver": {"subject": "user:sam"}}),
            ("r", "approved", approved),
        )
    )
    assert [f.code for f in report.findings] == [code]


def test_collecting_twice_or_before_issuance_is_a_finding() -> None:
    report = _verify(
        _export(
            ("r", "collected", {"by": "x"}),
            ("s", "requested", REQUESTED),
            ("s", "evaluated", ALLOWED),
            ("s", "issued", ISSUED),
            ("s", "collected", {"by": "x"}),
            ("s", "collected", {"by": "x"}),
        )
    )
    assert _lineage(report) == [("collected_before_issued", 1, "r"), ("collected_twice", 6, "s")]


def test_a_break_glass_grant_unreviewed_past_its_deadline_is_a_policy_finding() -> None:
    # The export's checkpoint is signed an hour after T0 (evidence_support.checkpoint_over).
    due = {"by": "break_glass", "review_due_at": "2026-11-23T10:30:00.000Z"}
    later = {"by": "break_glass", "review_due_at": "2026-11-24T10:00:00.000Z"}
    report = _verify(
        _export(
            ("late", "approved", due),
            ("fine", "approved", later),
            ("done", "approved", due),
            ("done", "reviewed", {"by": "user:sam", "reason": "ok"}),
        )
    )
    assert _policy_codes(report) == [("policy", "break_glass_unreviewed", 1)]
