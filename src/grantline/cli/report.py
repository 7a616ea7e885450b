"""``grantline audit report``: the evidence report of a period, as HTML with a JSON twin.

The log comes from a broker (streamed to a temporary export first) or, with ``--from``, from
an export file; either way it is verified before it is counted. Exit 0 when the evidence
verifies (policy findings such as an unreviewed break-glass grant are reported, not
failures), 2 when it does not (the report is still written, under a red banner), 3 when the
broker cannot be reached, 4 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.cli import exit_codes, log_source
from grantline.cli.http import add_connection_arguments, broker_client
from grantline.domain.errors import ConfigError
from grantline.domain.models import format_time, parse_time
from grantline.evidence.bundle import is_bundle
from grantline.evidence.signer import load_public_keys
from grantline.report.build import Options, Report, build_report
from grantline.report.figures import Period
from grantline.report.render import json_path_of, write_report


def register(audit_commands: Any) -> None:
    report = audit_commands.add_parser(
        "report", help="write the evidence report of a period (HTML, and JSON beside it)"
    )
    report.add_argument(
        "--out", required=True, type=Path, help="the HTML file; FILE.json is written beside it"
    )
    report.add_argument("--since", help="requests made at or after this RFC 3339 time")
    report.add_argument("--until", help="requests made before this RFC 3339 time")
    report.add_argument(
        "--from",
        dest="export",
        type=Path,
        metavar="EXPORT_FILE",
        help="report offline on an export (grantline audit export) instead of fetching the log",
    )
    report.add_argument(
        "--jwks",
        help="trusted keys, a JWKS file or URL (default: the broker's; with --from, the keys "
        "in $GRANTLINE_HOME)",
    )
    report.add_argument("--top", type=int, default=10, help="rows of each ranked list")
    report.add_argument("--workers", type=int, help="processes to verify with (default: all)")
    add_connection_arguments(report)
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    period = _period(args.since, args.until)
    _check_out(args.out)
    if args.top < 1:
        raise ConfigError("--top must be at least 1")
    if args.export is not None:
        return _offline(args, period)
    # The fetched log goes beside the report: as large as the log, it may not fit in /tmp.
    folder = args.out.parent
    with (
        broker_client(args) as client,
        tempfile.TemporaryDirectory(prefix=".grantline-report-", dir=folder) as tmp,
    ):
        base = str(client.base_url).rstrip("/")
        export = Path(tmp) / "export.jsonl"
        _fetch(client, export)
        keys = load_public_keys(
            log_source.trusted_keys(args.jwks or f"{base}/.well-known/jwks.json")
        )
        return _report(export, keys, _options(args, period, source=base, base=base), args.out)


def _offline(args: argparse.Namespace, period: Period) -> int:
    if is_bundle(log_source.first_line(args.export)):
        raise ConfigError(
            f"{args.export} is an evidence bundle: a report needs a whole export "
            "(grantline audit export --out FILE, without filters); choose the period with "
            "--since and --until"
        )
    keys = load_public_keys(log_source.trusted_keys(args.jwks))
    base = args.url.rstrip("/") if args.url else None
    options = _options(args, period, source=str(args.export), base=base)
    return _report(args.export, keys, options, args.out)


def _fetch(client: httpx.Client, export: Path) -> None:
    """The whole log up to the newest checkpoint, as ``audit export`` writes it."""
    checkpoint = log_source.checkpoint_line(client)
    with export.open("wb") as out:
        out.writelines(
            line + b"\n" for line in log_source.record_lines(client, json.loads(checkpoint)["size"])
        )
        out.write(checkpoint + b"\n")


def _options(args: argparse.Namespace, period: Period, *, source: str, base: str | None) -> Options:
    return Options(
        source=source,
        generated_at=format_time(datetime.now(UTC)),
        period=period,
        lineage_base=base,
        top=args.top,
        workers=args.workers,
    )


def _report(export: Path, keys: dict[str, Ed25519PublicKey], options: Options, out: Path) -> int:
    """Build, write, and say in one line what it shows."""
    if not keys:
        raise ConfigError("no Ed25519 log key among the trusted keys")
    try:
        report = build_report(export, keys, options)
        written = write_report(report, out)
    except OSError as exc:
        raise ConfigError(f"cannot read {export} or write {out}: {exc}") from exc
    print(_headline(report, out, written))
    if report.verification.trusted:
        return exit_codes.OK
    print(
        f"FAILED: the evidence does not verify ({report.verification.findings_total} findings); "
        f"see the report",
        file=sys.stderr,
    )
    return exit_codes.INTEGRITY


def _headline(report: Report, html: Path, written: Path) -> str:
    figures, verification = report.figures, report.verification
    status = "verified" if verification.ok else f"{verification.findings_total} findings"
    return (
        f"wrote {html} and {written}: {figures.requests.total} requests, "
        f"{figures.grants.total} grants, {figures.denials.total} denials; "
        f"{verification.records} records, {status}"
    )


def _check_out(out: Path) -> None:
    if json_path_of(out) == out:
        raise ConfigError(f"--out {out}: name the HTML file; the JSON goes beside it")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: no folder {out.parent}")


def _period(since: str | None, until: str | None) -> Period:
    period = Period(_time(since, "--since"), _time(until, "--until"))
    if period.since and period.until and period.since >= period.until:
        raise ConfigError("--since must be before --until")
    return period


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ConfigError(
            f"{option} {text!r} is not an RFC 3339 time (like 2026-11-23T10:00:00Z)"
        ) from exc
