"""docs/audit-report.md lists each control with exactly the mapping report/controls.py holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grantline.report.controls import CONTROLS, MAESTRO_LAYERS, OWASP_NHI, Control

DOC = Path(__file__).resolve().parents[3] / "docs" / "audit-report.md"


def row_of(control: Control) -> str:
    rows = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith(f"| **{control.title}** (`{control.id}`) |")
    ]
    assert len(rows) == 1, control.id
    return rows[0]


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.id)
def test_the_documented_row_matches_the_mapping(control: Control) -> None:
    evidence, nhi, nist, maestro = row_of(control).split(" | ")[1:5]
    assert evidence == "; ".join(label for _, label in control.evidence)
    assert re.findall(r"NHI\d+", nhi) == list(control.owasp_nhi)
    for item in control.owasp_nhi:
        assert f"{item} {OWASP_NHI[item]}" in nhi
    assert re.findall(r"[A-Z]{2}\.[A-Z]{2}-\d\d", nist) == list(control.nist_csf)
    for layer, threat in control.maestro:
        name = "Cross-layer" if layer == "CL" else f"{layer} {MAESTRO_LAYERS[layer]}"
        assert f"{name}: {threat}" in maestro
    assert maestro.count(": ") == len(control.maestro)
