"""The lineage page's rows: who, what and the decision of each kind of record, and no record
shape, however odd, breaks the page."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from grantline.api.ui import pages
from grantline.api.ui.display import MAX_FACTS, MAX_TEXT, text_of
from grantline.api.ui.timeline import (
    FIRST_ROWS,
    LAST_ROWS,
    Checkpoint,
    Fact,
    Gap,
    LineagePage,
    lineage_page,
    row_of,
    shown_lines,
    summary_facts,
)
from grantline.evidence.record import RECORD_DOMAIN, seal
from grantline.evidence.signer import LocalEd25519Signer

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
RID = "019ab0c4-2f5b-7c3e-8a1d-5e2f9b7c4d10"


def line(event: str, data: dict[str, Any], seq: int = 1, **extra: Any) -> bytes:
    body = {
        "v": 1,
        "seq": seq,
        "prev": "sha256:" + "0" * 64,
        "request_id": RID,
        "event": event,
        "at": "2026-11-23T10:00:00.123Z",
        "data": data,
        **extra,
    }
    return seal(body, SIGNER, RECORD_DOMAIN)


def as_dict(facts: Any) -> dict[str, str]:
    return {fact.label: fact.value for fact in facts}


def test_a_requested_record_says_for_whom_which_agent_and_what_was_asked() -> None:
    row = row_of(
        line(
            "requested",
            {
                "identity": {"subject": "user:alice", "issuer": "dev", "claims_sha256": "x"},
                "actor": {"subject": "agent:planner", "chain": ["agent:planner", "agent:sub"]},
                "request": {
                    "target": "postgres://orders-db",
                    "role": "db-read",
                    "ttl_seconds": 600,
                    "credential_type": "jwt",
                    "purpose": "nightly export",
                    "ticket": "",
                    "agent": {"goal": "export", "tool": "psql"},
                },
            },
        )
    )
    assert (row.seq, row.event, row.title, row.at) == (
        1,
        "requested",
        "Requested",
        "2026-11-23T10:00:00.123Z",
    )
    assert as_dict(row.who) == {
        "for": "user:alice",
        "issuer": "dev",
        "agent": "agent:planner",
        "actor chain": "agent:planner \u2192 agent:sub",
    }
    assert as_dict(row.what) == {
        "target": "postgres://orders-db",
        "role": "db-read",
        "TTL": "600 s",
        "credential type": "jwt",
        "purpose": "nightly export",
        "agent goal": "export",
        "agent tool": "psql",
    }
    assert row.decision is None
    assert not row.break_glass


def test_the_row_keeps_the_exact_line_for_the_browser_to_verify() -> None:
    signed = line("collected", {"by": "user:alice"}, seq=7)
    row = row_of(signed)
    assert base64.b64decode(row.line) == signed
    assert row.text == signed.decode()
    assert as_dict(row.who) == {"by": "user:alice"}


def test_an_evaluated_record_shows_the_decision_and_its_reasons() -> None:
    row = row_of(
        line(
            "evaluated",
            {
                "decision": {
                    "allow": False,
                    "reasons": ["ttl_seconds 901 exceeds the cap of 900 for db-read"],
                    "require_approval": False,
                    "rule": "rbac",
                },
                "policy_digest": "sha256:aa",
                "input_digest": "sha256:bb",
            },
        )
    )
    assert row.decision is not None
    assert row.decision.allow is False
    assert [(r.value, r.path) for r in row.decision.reasons] == [
        ("ttl_seconds 901 exceeds the cap of 900 for db-read", "data.decision.reasons[0]")
    ]
    assert row.decision.allow_path == "data.decision.allow"
    assert as_dict(row.decision.facts) == {
        "approval required": "no",
        "rule": "rbac",
        "policy": "sha256:aa",
        "input digest": "sha256:bb",
    }
    assert as_dict(row.who) == {"by": "policy"}


def test_a_denied_record_is_a_deny_with_its_reasons() -> None:
    row = row_of(line("denied", {"reasons": ["no binding", "no role"]}))
    assert row.decision is not None
    assert row.decision.allow is False
    assert [r.value for r in row.decision.reasons] == ["no binding", "no role"]


def test_approvals_name_the_approver_the_groups_and_the_requirement() -> None:
    given_row = row_of(
        line(
            "approval_given",
            {
                "approver": {"subject": "user:sam", "issuer": "dev"},
                "reason": "ok",
                "groups": ["security"],
                "decision": {"allow": True, "reasons": [], "rule": "approval"},
            },
        )
    )
    assert as_dict(given_row.who) == {"approver": "user:sam", "approver issuer": "dev"}
    assert as_dict(given_row.what) == {"reason": "ok", "counts for": "security"}
    assert given_row.decision is not None and given_row.decision.allow is True
    approved = row_of(
        line(
            "approved",
            {
                "by": "approvers",
                "approvers": {"security": ["user:sam"], "platform-oncall": ["user:bob", "user:c"]},
                "requirement": {
                    "all_of": [
                        {"group": "security", "count": 1},
                        {"group": "platform-oncall", "count": 2},
                    ]
                },
            },
        )
    )
    assert as_dict(approved.who) == {
        "by": "approvers",
        "approvers": "platform-oncall: user:bob, user:c; security: user:sam",  # as signed
    }
    assert as_dict(approved.what) == {"requirement": "1 of security, 2 of platform-oncall"}
    by_policy = row_of(line("approved", {"by": "policy", "rule": "rbac", "policy_digest": "d"}))
    assert by_policy.decision is not None
    assert as_dict(by_policy.decision.facts) == {"rule": "rbac", "policy": "d"}


def test_an_issued_record_shows_ids_and_fingerprints_and_the_acting_chain() -> None:
    row = row_of(
        line(
            "issued",
            {
                "credential_type": "vault_token",
                "fingerprint": "sha256:ff",
                "issued_at": "2026-11-23T10:00:00.000Z",
                "expires_at": "2026-11-23T10:10:00.000Z",
                "handle": {"accessor": "acc-1"},
                "cnf": {"jkt": "thumb"},
                "act": {"sub": "agent:a", "act": {"sub": "agent:b"}},
                "break_glass": True,
            },
        )
    )
    assert as_dict(row.who) == {"actor": "agent:a \u2192 agent:b"}
    assert as_dict(row.what) == {
        "credential type": "vault_token",
        "fingerprint": "sha256:ff",
        "issued at": "2026-11-23T10:00:00.000Z",
        "expires at": "2026-11-23T10:10:00.000Z",
        "handle": "accessor: acc-1",
        "bound to key": "thumb",
    }
    assert row.break_glass
    assert as_dict(row.details)["handle.accessor"] == "acc-1"


def test_an_unknown_event_still_shows_every_field() -> None:
    row = row_of(line("renewed", {"until": "later", "nested": {"list": [{"a": 1}]}}))
    assert row.title == "Renewed"
    assert (row.who, row.what, row.decision) == ((), (), None)
    assert as_dict(row.details) == {"until": "later", "nested.list[0].a": "1"}


def test_long_values_are_cut_and_details_are_bounded() -> None:
    assert len(text_of("x" * (MAX_TEXT + 50))) == MAX_TEXT
    row = row_of(line("reconciled", {f"k{i}": i for i in range(MAX_FACTS + 20)}))
    assert len(row.details) == MAX_FACTS


def test_an_unreadable_line_is_a_row_without_a_seq() -> None:
    row = row_of(b"\xff not json")
    assert (row.seq, row.event, row.title) == (None, "", "Unreadable record")
    assert base64.b64decode(row.line) == b"\xff not json"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(st.dictionaries(st.sampled_from(["seq", "event", "at", "data", "break_glass"]), json_values))
def test_no_record_shape_breaks_a_row(body: dict[str, Any]) -> None:
    row_of(json.dumps(body).encode())


@given(st.binary(max_size=200))
def test_no_bytes_break_a_row(raw: bytes) -> None:
    row_of(raw)


def test_the_summary_shows_the_usual_members_first_and_nothing_empty() -> None:
    facts = summary_facts(
        {
            "request_id": "r",
            "status": "revoked",
            "issuer": "dev",
            "subject": "user:alice",
            "role": "db-read",
            "ttl_seconds": 600,
            "actors": ["agent:a"],
            "approval": {"missing": [], "approvals": [{"approver": "user:sam"}]},
        }
    )
    assert [(f.label, f.value) for f in facts] == [
        ("subject", "user:alice"),
        ("actors", "agent:a"),
        ("role", "db-read"),
        ("ttl seconds", "600 s"),
        ("issuer", "dev"),
        ("approval.approvals[0].approver", "user:sam"),
    ]


def test_the_page_gives_each_row_its_proof_and_an_unknown_status_without_state() -> None:
    rows = [row_of(line("requested", {}, seq=3)), row_of(line("evaluated", {}, seq=9))]
    page = lineage_page(
        RID,
        rows,
        summary=None,
        checkpoint=Checkpoint("bm90ZQ==", 8),
        proofs={3: [b"\x00" * 32, b"\x01" * 32]},
    )
    assert page.status == "unknown"
    assert page.rows[0].proof == (
        base64.b64encode(b"\x00" * 32).decode(),
        base64.b64encode(b"\x01" * 32).decode(),
    )
    assert page.rows[1].proof is None


def test_every_fact_names_the_field_of_the_record_it_comes_from() -> None:
    row = row_of(
        line(
            "requested",
            {
                "identity": {"subject": "user:alice"},
                "request": {"purpose": "export", "ttl_seconds": 60},
                "break_glass": True,
            },
        )
    )
    assert [(f.label, f.path) for f in row.who] == [("for", "data.identity.subject")]
    assert [(f.label, f.path) for f in row.what] == [
        ("TTL", "data.request.ttl_seconds"),
        ("purpose", "data.request.purpose"),
    ]
    assert row.break_glass_path == "data.break_glass"
    evaluated = row_of(line("evaluated", {"decision": {"allow": True}, "policy_digest": "d"}))
    assert evaluated.who == (Fact("by", "policy", "event"),)
    assert evaluated.decision is not None
    assert [(f.label, f.path) for f in evaluated.decision.facts] == [
        ("policy", "data.policy_digest")
    ]


def test_one_policy_digest_is_shown_where_the_record_and_its_decision_agree() -> None:
    same = {"decision": {"allow": True, "policy_digest": "d"}, "policy_digest": "d"}
    other = {"decision": {"allow": True, "policy_digest": "e"}, "policy_digest": "d"}
    assert len(row_of(line("evaluated", same)).decision.facts) == 1  # type: ignore[union-attr]
    assert len(row_of(line("evaluated", other)).decision.facts) == 2  # type: ignore[union-attr]


def test_a_long_lineage_keeps_its_first_and_last_lines_and_counts_the_rest() -> None:
    lines = [f"{seq}".encode() for seq in range(1, FIRST_ROWS + LAST_ROWS + 8)]
    kept, gap = shown_lines(lines)
    assert kept == lines[:FIRST_ROWS] + lines[-LAST_ROWS:]
    assert gap == Gap(FIRST_ROWS, 7)
    assert shown_lines(lines[: FIRST_ROWS + LAST_ROWS]) == (lines[: FIRST_ROWS + LAST_ROWS], None)


def render(page: LineagePage) -> str:
    return bytes(pages.render("lineage.html", who="user:auditor", page=page).body).decode()


def test_the_page_marks_each_shown_fact_with_its_field_and_the_state_as_unsigned() -> None:
    rows = [
        row_of(line("requested", {"request": {"purpose": "<export>"}}, seq=1)),
        row_of(line("denied", {"reasons": ["no"]}, seq=2)),
    ]
    html = render(lineage_page(RID, rows, summary={"status": "denied"}, checkpoint=None, proofs={}))
    assert '<dt>purpose</dt><dd data-path="data.request.purpose">&lt;export&gt;</dd>' in html
    assert '<span class="outcome outcome-deny" data-path="event">denied</span>' in html
    assert '<li data-path="data.reasons[0]">no</li>' in html
    assert "<dt>request.purpose</dt><dd>&lt;export&gt;</dd>" in html  # details: no path
    assert html.count('data-facts="pending"') == 2
    assert 'data-source="broker-state"' in html


def test_the_page_says_where_records_are_left_out_and_how_to_get_them_all() -> None:
    rows = [row_of(line("approval_refused", {}, seq=seq)) for seq in (1, 2, 9)]
    page = lineage_page(
        RID, rows, summary=None, checkpoint=None, proofs={}, gap=Gap(index=2, count=6)
    )
    html = render(page)
    assert "9 records, 3 shown" in html
    assert f"grantline audit export --request-id {RID} --out FILE" in html
    seqs = re.findall(r'data-seq="(\d+)"|<li class="gap">([^<]*)</li>', html)
    assert seqs == [("1", ""), ("2", ""), ("", "6 records not shown"), ("9", "")]
