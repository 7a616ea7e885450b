"""``grantline audit export`` and ``grantline audit verify``: evidence out, evidence checked."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.cli import exit_codes, log_source, report
from grantline.cli.bundle import add_filter_arguments, export_bundle, selection_of
from grantline.cli.http import add_connection_arguments, broker_client
from grantline.domain.errors import (
    ConfigError,
    IntegrityError,
)
from grantline.evidence.bundle import is_bundle, verify_bundle
from grantline.evidence.note import CheckpointNote, NoteKey, open_checkpoint
from grantline.evidence.parallel import verify_file
from grantline.evidence.signer import load_public_keys, raw_public_bytes
from grantline.evidence.verify import VerifyReport

_SHOWN = 1000


def register(commands: Any) -> None:
    parser = commands.add_parser("audit", help="export and verify evidence")
    audit_commands = parser.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    export = audit_commands.add_parser("export", help="write the log as JSON Lines")
    export.add_argument("--out", required=True, type=Path, help="file to write")
    add_filter_arguments(export)
    add_connection_arguments(export)
    export.set_defaults(run=run_export)
    verify = audit_commands.add_parser("verify", help="verify an export offline")
    verify.add_argument("file", type=Path)
    verify.add_argument(
        "--jwks", help="trusted keys: a JWKS file or URL (default: the keys in $GRANTLINE_HOME)"
    )
    verify.add_argument("--json", type=Path, dest="json_out", help="also write findings as JSON")
    verify.add_argument(
        "--workers", type=int, default=None, help="processes to verify with (default: every core)"
    )
    verify.add_argument(
        "--against",
        type=Path,
        metavar="CHECKPOINT_FILE",
        help="a checkpoint note kept from earlier (GET /v1/checkpoint): the export must extend it",
    )
    verify.set_defaults(run=run_verify)
    report.register(audit_commands)


def run_export(args: argparse.Namespace) -> int:
    if selection_of(args) or args.resume:
        with broker_client(args) as client:
            count, size = export_bundle(client, args)
        print(f"bundled {count} records with their proofs to a checkpoint at size {size}")
        return exit_codes.OK
    with broker_client(args) as client:
        checkpoint = log_source.checkpoint_line(client)
        size = json.loads(checkpoint)["size"]
        count = 0
        tmp = args.out.with_name(args.out.name + ".partial")
        with tmp.open("wb") as out:
            for line in log_source.record_lines(client, size):
                out.write(line + b"\n")
                count += 1
            out.write(checkpoint + b"\n")
        tmp.replace(args.out)
    print(f"exported {count} records and a checkpoint at size {size} to {args.out}")
    return exit_codes.OK


def run_verify(args: argparse.Namespace) -> int:
    keys = load_public_keys(log_source.trusted_keys(args.jwks))
    kept = _kept_checkpoint(args.against, keys) if args.against else None
    started = time.perf_counter()
    if is_bundle(log_source.first_line(args.file)):
        if kept is not None:
            raise ConfigError(
                "--against checks a full export; a bundle proves each record against the "
                "checkpoint it carries"
            )
        return _verify_bundle(args, keys)
    try:
        report = verify_file(
            args.file, keys, kept, workers=args.workers, progress=_progress(started)
        )
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc}") from exc
    elapsed = time.perf_counter() - started
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json_out:
        args.json_out.write_text(report.to_json())
    _print_findings(report)
    rate = report.records / elapsed if elapsed > 0 else 0.0
    summary = (
        f"{report.records} records in {elapsed:.1f} s ({rate:,.0f} records/s), "
        f"{len(report.findings)} findings"
    )
    if report.usage:
        print(_usage_line(report.usage))
    if report.ok:
        print(f"OK: {summary}; signatures, chain, Merkle root, checkpoint and lineage verify")
        return exit_codes.OK
    print(f"FAILED: {summary}", file=sys.stderr)
    return exit_codes.INTEGRITY


def _usage_line(usage: Mapping[str, int]) -> str:
    return (
        f"usage: {usage.get('grants_used', 0)} grants used ({usage.get('uses', 0)} uses in "
        f"{usage.get('used_records', 0)} used records, {usage.get('after_end', 0)} after their "
        f"grant ended); {usage.get('outcome_records', 0)} outcomes reported"
    )


def _verify_bundle(args: argparse.Namespace, keys: Mapping[str, Ed25519PublicKey]) -> int:
    with args.file.open("rb") as handle:
        report = verify_bundle((line.rstrip(b"\n") for line in handle), keys)
    if args.json_out:
        args.json_out.write_text(report.to_json())
    _print_findings(report)
    if report.ok:
        print(f"OK: bundle of {report.records} records; each signed and proven in the log")
        return exit_codes.OK
    print(f"FAILED: bundle of {report.records} records, {len(report.findings)} findings")
    return exit_codes.INTEGRITY


def _progress(started: float) -> Callable[[int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int) -> None:
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"\rverifying: {done:,} lines ({rate:,.0f}/s)", end="", file=sys.stderr)

    return show


def _print_findings(report: VerifyReport) -> None:
    """Each finding (the first thousand), then how many of each category and code."""
    for finding in report.findings[:_SHOWN]:
        where = f"seq {finding.seq}" if finding.seq is not None else "export"
        rid = f" request {finding.request_id}" if finding.request_id else ""
        print(f"{finding.category}: {finding.code} at {where}{rid}: {finding.message}")
    if len(report.findings) > _SHOWN:
        print(f"... and {len(report.findings) - _SHOWN} more (all of them with --json)")
    for (category, code), count in sorted(report.counts().items()):
        print(f"count {category} {code}: {count}")


def _kept_checkpoint(path: Path, keys: Mapping[str, Ed25519PublicKey]) -> CheckpointNote:
    """A checkpoint note kept from earlier, verified with one of the trusted log keys."""
    try:
        note = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the kept checkpoint {path}: {exc}") from exc
    origin = note.split("\n", 1)[0]
    for key in keys.values():
        try:
            return open_checkpoint(note, NoteKey(origin, raw_public_bytes(key)))
        except IntegrityError:
            continue
    raise IntegrityError(f"the kept checkpoint {path} is not signed by any trusted log key")
