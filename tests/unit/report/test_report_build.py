"""A report from a signed export file, offline: the command verifies before it counts, says
so in its exit code, and refuses what it cannot report on (exit 4)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from report_support import T0, Log
from test_report_figures import scenario

from grantline.cli.main import main
from grantline.domain.models import parse_time
from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.checkpoint import make_checkpoint
from grantline.evidence.signer import LocalEd25519Signer, load_public_keys
from grantline.report.build import Options, build_report

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))


def signed_export(log: Log, path: Path) -> Path:
    """The log's records sealed into a chain, then a checkpoint over them, as an export."""
    head, lines = ChainHead.genesis(), []
    for record in log.records:
        if record.get("event") == "checkpoint":
            continue
        line, head = seal_next(
            head,
            request_id=record["request_id"],
            event=record["event"],
            at=parse_time(record["at"]),
            data=record["data"],
            signer=SIGNER,
        )
        lines.append(line)
    at = T0 + timedelta(minutes=5)
    lines.append(make_checkpoint(head, origin="report.test/log", at=at, signer=SIGNER))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def jwks(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [SIGNER.public_jwk()]}))
    return path


def report(tmp_path: Path, *args: str) -> int:
    return main(["audit", "report", "--out", str(tmp_path / "out.html"), *args])


def test_a_verified_export_is_counted_and_reported(tmp_path: Path, jwks: Path) -> None:
    export = signed_export(scenario(), tmp_path / "export.jsonl")
    keys = load_public_keys(json.loads(jwks.read_text()))
    built = build_report(export, keys, Options(source="export", generated_at="now", workers=1))
    assert built.verification.trusted
    assert built.figures.grants.total == 7  # the whole log: "old" too
    since = ("--since", "2026-11-23T10:00:00Z")
    code = report(tmp_path, "--from", str(export), "--jwks", str(jwks), "--workers", "1", *since)
    assert code == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["figures"]["grants"]["total"] == 6
    # Break-glass b1 was due before the checkpoint and never reviewed: a policy finding.
    assert [f["code"] for f in data["verification"]["findings"]] == ["break_glass_unreviewed"]
    assert 'class="banner warn"' in (tmp_path / "out.html").read_text()


def test_an_export_that_does_not_verify_exits_2_with_the_report_written(
    tmp_path: Path, jwks: Path
) -> None:
    export = signed_export(scenario(), tmp_path / "export.jsonl")
    lines = export.read_bytes().split(b"\n")
    del lines[3]
    export.write_bytes(b"\n".join(lines))
    assert report(tmp_path, "--from", str(export), "--jwks", str(jwks), "--workers", "1") == 2
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["verification"]["trusted"] is False
    assert "integrity/seq_gap" in {c["key"] for c in data["verification"]["counts"]}
    assert 'class="banner fail"' in (tmp_path / "out.html").read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday"],
        ["--since", "2026-11-23T10:00:00"],  # no zone
        ["--since", "2026-11-23T11:00:00Z", "--until", "2026-11-23T10:00:00Z"],
        ["--top", "0"],
    ],
)
def test_usage_errors_exit_4_and_write_nothing(tmp_path: Path, jwks: Path, args: list[str]) -> None:
    export = signed_export(scenario(), tmp_path / "export.jsonl")
    assert report(tmp_path, "--from", str(export), "--jwks", str(jwks), *args) == 4
    assert not (tmp_path / "out.html").exists()


@pytest.mark.parametrize("out", ["out.json", "missing/out.html"])
def test_the_page_goes_where_its_twin_can_go_beside_it(
    tmp_path: Path, jwks: Path, out: str
) -> None:
    target = str(tmp_path / out)
    assert main(["audit", "report", "--out", target, "--from", "x", "--jwks", str(jwks)]) == 4


def test_a_bundle_is_refused_with_the_way_to_a_whole_export(
    tmp_path: Path, jwks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_text(json.dumps({"bundle": "grantline/bundle/v1"}) + "\n")
    assert report(tmp_path, "--from", str(bundle), "--jwks", str(jwks)) == 4
    assert "evidence bundle" in capsys.readouterr().err
