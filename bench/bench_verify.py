"""Offline verification of a large export: `grantline audit verify` on one and on every core,
beside the bare cost of the Ed25519 checks it must make.

Writes an export of ``--records`` records (default one million) in a temporary directory:
requests of a realistic mix (allowed by policy, denied, approved by two approvers), each
record signed and chained as the broker writes them, ending with a checkpoint that carries
the Merkle root. Then times ``grantline audit verify`` with ``--workers 1`` and with every
core, and, as the baseline, bare Ed25519 verification of 100,000 record-sized messages on one
core. Reports records a second and the ratios.

    python bench/bench_verify.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from results_file import record

from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.checkpoint import make_checkpoint
from grantline.evidence.merkle import frontier_append, frontier_root, leaf_hash
from grantline.evidence.signer import LocalEd25519Signer

GRANTLINE = str(Path(sys.executable).parent / "grantline")
T0 = datetime(2026, 11, 23, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def flows(n: int) -> list[tuple[str, dict[str, object]]]:
    """The records of request ``n``: mostly allowed by policy, some denied, some approved."""
    subject = f"spiffe://example.org/ns/batch/job-{n % 512}"
    requested = {
        "identity": {"subject": subject, "issuer": "grantline-dev", "claims_sha256": DIGEST},
        "request": {
            "target": "s3://reports",
            "role": "report-read",
            "ttl_seconds": 600,
            "credential_type": "jwt",
            "purpose": "nightly export",
            "ticket": "CHG-1234",
            "agent": {},
        },
    }
    decision = {"allow": True, "reasons": [], "require_approval": False, "rule": "rbac"}
    evaluated = {"decision": decision, "policy_digest": DIGEST, "input_digest": DIGEST}
    issued = {
        "credential_type": "jwt",
        "fingerprint": DIGEST,
        "issued_at": "2026-11-23T10:00:00.000Z",
        "expires_at": "2026-11-23T10:10:00.000Z",
        "handle": {"jti": f"jti-{n}", "kid": "token-key"},
    }
    if n % 50 == 0:
        denied = {**decision, "allow": False, "reasons": ["ttl too long"], "rule": "deny"}
        return [
            ("requested", requested),
            ("evaluated", {**evaluated, "decision": denied}),
            ("denied", {"reasons": ["ttl too long"]}),
        ]
    if n % 20 == 0:
        pending = {**decision, "require_approval": True, "rule": "approval"}
        approvers = {"security": ["user:sam"], "platform-oncall": ["user:bob"]}
        requirement = {
            "all_of": [{"group": "security", "count": 1}, {"group": "platform-oncall", "count": 1}]
        }
        return [
            ("requested", requested),
            ("evaluated", {**evaluated, "decision": pending}),
            ("approval_given", {"approver": {"subject": "user:bob"}, "reason": "ok"}),
            ("approval_given", {"approver": {"subject": "user:sam"}, "reason": "ok"}),
            ("approved", {"by": "approvers", "approvers": approvers, "requirement": requirement}),
            ("issued", issued),
        ]
    policy = {"by": "policy", "rule": "rbac", "policy_digest": DIGEST}
    return [
        ("requested", requested),
        ("evaluated", evaluated),
        ("approved", policy),
        ("issued", issued),
    ]


def write_export(path: Path, records: int, signer: LocalEd25519Signer) -> None:
    head, frontier, n = ChainHead.genesis(), [], 0
    with path.open("wb") as out:
        while head.seq < records:
            for event, data in flows(n):
                if head.seq >= records:
                    break
                at = T0 + timedelta(milliseconds=head.seq)
                line, head = seal_next(
                    head, request_id=f"req-{n}", event=event, at=at, data=data, signer=signer
                )
                frontier_append(head.seq - 1, frontier, leaf_hash(line))
                out.write(line + b"\n")
            n += 1
        checkpoint = make_checkpoint(
            head,
            origin="bench/grantline",
            at=T0 + timedelta(days=1),
            signer=signer,
            root=frontier_root(frontier),
        )
        out.write(checkpoint + b"\n")


def run_verify(export: Path, jwks: Path, workers: int) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [GRANTLINE, "audit", "verify", str(export), "--jwks", str(jwks), "--workers", str(workers)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"verify failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def bare_ed25519(signer: LocalEd25519Signer, count: int) -> float:
    message = b"x" * 700
    signature = signer.sign(message)
    key = signer.public_key()
    started = time.perf_counter()
    for _ in range(count):
        key.verify(signature, message)
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    signer = LocalEd25519Signer.from_seed(bytes(range(32)))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="grantline-bench-") as tmp:
        export, jwks = Path(tmp) / "export.jsonl", Path(tmp) / "jwks.json"
        jwks.write_text(json.dumps({"keys": [signer.public_jwk()]}))
        started = time.perf_counter()
        write_export(export, args.records, signer)
        written = time.perf_counter() - started
        size_mb = export.stat().st_size / 1e6
        baseline = bare_ed25519(signer, 100_000)
        one = run_verify(export, jwks, 1)
        every = run_verify(export, jwks, cores)
    print(f"{args.records:,} records, {size_mb:,.0f} MB, written and signed in {written:.0f} s")
    print(f"{'what':44} {'seconds':>8} {'records/s':>11}")
    print(f"{'bare Ed25519 verify, 1 core (baseline)':44} {'':>8} {baseline:11,.0f}")
    for label, seconds in (
        ("audit verify, --workers 1", one),
        (f"audit verify, --workers {cores}", every),
    ):
        print(f"{label:44} {seconds:8.1f} {args.records / seconds:11,.0f}")
    record(
        "verify",
        {
            "records": args.records,
            "bare_ed25519_rps": baseline,
            "verify_one_worker_rps": args.records / one,
            "verify_rps": args.records / every,
            "verify_seconds": every,
            "ratio": args.records / every / baseline,
        },
    )
    print(
        f"verify on {cores} cores / bare Ed25519 on 1 core: "
        f"{args.records / every / baseline:.2f}; speed-up over 1 worker: {one / every:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
