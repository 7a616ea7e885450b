"""Verifying on several cores finds exactly what verifying on one finds, in the same order."""

from __future__ import annotations

from pathlib import Path

import pytest
from evidence_support import KEYS, export

from grantline.evidence.parallel import verify_file
from grantline.evidence.verify import verify_export

MANY = tuple(
    (f"r{n}", event, data)
    for n in range(300)
    for event, data in (
        ("requested", {"identity": {"subject": f"s{n}"}, "request": {}}),
        ("evaluated", {"decision": {"allow": True, "reasons": []}}),
        ("issued", {"fingerprint": "x"}),
    )
)


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_verification_matches_the_sequential_one(tmp_path: Path, workers: int) -> None:
    lines = export(MANY)
    lines[100] = lines[100].replace(b'"allow":true', b'"allow":false')  # a bad signature
    del lines[500]  # a missing record
    lines.insert(700, b"not json")
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    expected = verify_export(lines, KEYS)
    seen: list[int] = []
    report = verify_file(path, KEYS, workers=workers, progress=seen.append)

    assert report.findings == expected.findings
    assert report.records == expected.records == len(lines) - 1
    assert {f.code for f in report.findings} >= {"bad_signature", "seq_gap", "malformed_line"}
    assert seen[-1] == len(lines)


def test_a_clean_export_verifies_on_every_core(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(export(MANY)) + b"\n")
    report = verify_file(path, KEYS, workers=2)
    assert report.ok, report.findings
    assert report.records == 900


def test_odd_line_endings_read_alike_on_one_and_on_every_core(tmp_path: Path) -> None:
    lines = export(MANY[:30])
    data = b"\r\n".join(lines[:10]) + b"\r\n" + lines[10].replace(b",", b"\r,", 1) + b"\n"
    data += b"\n" + b"\n".join(lines[11:])  # an empty line, and no final newline
    path = tmp_path / "export.jsonl"
    path.write_bytes(data)
    one = verify_file(path, KEYS, workers=1)
    every = verify_file(path, KEYS, workers=2)
    assert one.findings == every.findings
    assert one.records == every.records
