"""The framework mapping is consistent data: known items only, every control mapped, every
fact it cites produced by the report."""

from __future__ import annotations

import re

from grantline.report.build import Verification, control_rows, facts_of
from grantline.report.controls import CONTROLS, MAESTRO_LAYERS, NIST_CSF, OWASP_NHI, evidence_of
from grantline.report.figures import Figures


def test_the_frameworks_list_the_published_items() -> None:
    assert list(OWASP_NHI) == [f"NHI{n}" for n in range(1, 11)]
    assert OWASP_NHI["NHI7"] == "Long-Lived Secrets"
    assert all(re.fullmatch(r"(PR\.AA|PR\.PS|DE\.CM)-0\d", item) for item in NIST_CSF)
    # PR.AA-06 is physical access: nothing a credential broker can evidence.
    assert "PR.AA-06" not in NIST_CSF
    assert [MAESTRO_LAYERS[f"L{n}"] for n in (1, 7)] == ["Foundation Models", "Agent Ecosystem"]


def test_every_control_maps_to_known_items_and_is_evidenced_by_known_facts() -> None:
    empty = Figures().finish()
    verification = Verification(True, True, 0, 0, None, None, (), (), 0)
    facts = facts_of(empty, verification)
    assert len({c.id for c in CONTROLS}) == len(CONTROLS)
    for control in CONTROLS:
        assert control.owasp_nhi or control.nist_csf, control.id
        assert set(control.owasp_nhi) <= set(OWASP_NHI), control.id
        assert set(control.nist_csf) <= set(NIST_CSF), control.id
        assert {layer for layer, _ in control.maestro} <= set(MAESTRO_LAYERS), control.id
        cited = {name for name, _ in control.evidence}
        assert cited <= set(facts) | {f"denials.kinds.{k}" for k in _DENIAL_KINDS}, control.id


_DENIAL_KINDS = (
    "ttl_cap",
    "unknown_role",
    "separation_of_duties",
    "human_only",
    "not_bound",
    "target_not_allowed",
)


def test_evidence_counts_come_from_the_facts() -> None:
    facts = {"grants.total": 7, "denials.kinds.ttl_cap": 2}
    short_lived = next(c for c in CONTROLS if c.id == "short-lived")
    assert evidence_of(short_lived, facts) == [
        ("credentials issued with an expiry", 7),
        ("requests refused above the cap", 2),
    ]
    row = next(r for r in control_rows(facts) if r.id == "short-lived")
    assert row.evidence_total == 9
    assert [i.id for i in row.owasp_nhi] == ["NHI7:2025", "NHI1:2025"]
    tamper = next(r for r in control_rows(facts) if r.id == "tamper-evident-log")
    assert tamper.evidence_total == 0
    assert {i.id for i in tamper.maestro} == {
        "L5 Evaluation and Observability",
        "L7 Agent Ecosystem",
    }
