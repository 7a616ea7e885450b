"""Per-decision latency of the embedded Rego engine as bindings and SoD pairs grow.

Run: ``python bench/bench_policy.py [--rounds N]``. For 10, 100 and 1,000 exact-subject
bindings and SoD pairs (plus a few glob bindings) it builds an engine over the shipped
``policies/grantline.rego`` and times ``evaluate`` on a contract-shaped input, side by side
with a trivial allow-all policy run through the same engine, which shows the fixed cost of
canonicalising the input, handing it to rego-cpp and reading the answer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results_file import record

from grantline.policy import EmbeddedRegoEngine

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10, 100, 1_000)
GLOBS = 5
TARGET_US = 200.0
BLOCK = 100
TRIVIAL = 'package grantline\n\ndecision := {"allow": true, "reasons": []}\n'


def generate_data(size: int) -> dict[str, Any]:
    """``size`` roles, exact bindings and SoD pairs, and a few glob bindings."""
    roles = {
        f"role-{i}": {"max_ttl_seconds": 3600, "targets": [f"svc://service-{i}"]}
        for i in range(size)
    }
    bindings = [
        {"subject": subject(i), "roles": [f"role-{i}", f"role-{(i + 1) % size}"]}
        for i in range(size)
    ]
    bindings += [
        {"subject": f"spiffe://example.org/ns/team-{g}/*", "roles": [f"role-{g}"]}
        for g in range(GLOBS)
    ]
    sod = [[f"role-{i}", f"role-{(i + size // 2) % size}"] for i in range(size)]
    return {"grantline": {"roles": roles, "bindings": bindings, "sod": sod, "groups": {}}}


def subject(i: int) -> str:
    return f"spiffe://example.org/svc/workload-{i}"


def policy_input(i: int, size: int, ttl: int) -> dict[str, Any]:
    """A contract-shaped input: workload ``i`` asks for its own role, holding one other grant."""
    return {
        "identity": {
            "subject": subject(i),
            "issuer": "https://dev.grantline.local",
            "claims": {
                "iss": "https://dev.grantline.local",
                "sub": subject(i),
                "aud": "grantline",
                "iat": 1_790_000_000,
                "exp": 1_790_000_600,
                "jti": "3b2f7c1e-1111-2222-3333-444455556666",
            },
        },
        "request": {
            "target": f"svc://service-{i}",
            "role": f"role-{i}",
            "ttl_seconds": ttl,
            "credential_type": "jwt",
            "purpose": "nightly export job",
            "ticket": "CHG-1234",
            "agent": {},
        },
        "active_grants": [
            {
                "request_id": "01JBENCH000000000000000000",
                "role": f"role-{(i + 1) % size}",
                "target": f"svc://service-{(i + 1) % size}",
                "expires_at": "2026-11-23T10:30:00.000Z",
            }
        ],
        "now": "2026-11-23T10:00:00.000Z",
    }


def asking(size: int, ttl: int) -> Callable[[int], dict[str, Any]]:
    """Inputs spread over the workloads, so no lookup is always the same one."""
    return lambda n: policy_input((n * 7919) % size, size, ttl)


def build(workdir: Path, rego: str, data: dict[str, Any] | None, *, allow_all: bool = False) -> Any:
    workdir.mkdir()
    (workdir / "grantline.rego").write_text(rego)
    if data is not None:
        (workdir / "data.json").write_text(json.dumps(data))
    return EmbeddedRegoEngine(workdir, unsafe_accept_allow_all=allow_all)


Cell = tuple[EmbeddedRegoEngine, list[dict[str, Any]]]


def cell(
    engine: EmbeddedRegoEngine, make: Callable[[int], dict[str, Any]], *, expect: bool
) -> Cell:
    """An engine and 64 inputs it must decide as ``expect`` (checked once, untimed)."""
    inputs = [make(i) for i in range(64)]
    for item in inputs:
        decision = engine.evaluate(item)
        assert decision.allow is expect, decision.reasons
    return engine, inputs


def measure(cells: list[Cell], rounds: int) -> list[tuple[float, float]]:
    """p50 and p99 of ``evaluate`` per cell, in microseconds.

    Cells take turns in blocks of ``BLOCK`` decisions: long enough to keep each engine warm
    in the CPU caches, short enough that a slow moment of a shared machine weighs on every
    column alike.
    """
    samples: list[list[float]] = [[] for _ in cells]
    for block in range(0, rounds, BLOCK):
        for (engine, inputs), timings in zip(cells, samples, strict=True):
            for n in range(block, min(rounds, block + BLOCK)):
                item = inputs[n % len(inputs)]
                start = time.perf_counter_ns()
                engine.evaluate(item)
                timings.append((time.perf_counter_ns() - start) / 1000)
    return [percentiles(timings) for timings in samples]


def percentiles(timings: list[float]) -> tuple[float, float]:
    timings.sort()
    return timings[len(timings) // 2], timings[min(len(timings) - 1, len(timings) * 99 // 100)]


def run(rounds: int) -> list[tuple[int, list[tuple[float, float]]]]:
    """Per size: p50/p99 of the trivial policy, the shipped policy allowing, and denying."""
    shipped = (ROOT / "policies" / "grantline.rego").read_text()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            data = generate_data(size)
            engine = build(Path(tmp) / f"shipped-{size}", shipped, data)
            baseline = build(Path(tmp) / f"trivial-{size}", TRIVIAL, data, allow_all=True)
            cells += [
                cell(baseline, asking(size, 600), expect=True),
                cell(engine, asking(size, 600), expect=True),
                cell(engine, asking(size, 7200), expect=False),
            ]
        results = measure(cells, rounds)
        shutil.rmtree(tmp, ignore_errors=True)
    return [(size, results[3 * i : 3 * i + 3]) for i, size in enumerate(SIZES)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="decisions timed per cell")
    rounds = parser.parse_args().rounds
    rows = run(rounds)
    print(f"per-decision latency in microseconds, p50 / p99 of {rounds} evaluate() calls each")
    print(
        f"{'bindings':>9} | {'trivial policy':>15} | {'shipped: allow':>15} | {'shipped: deny':>15}"
    )
    print("-" * 64)
    for size, cells in rows:
        print(f"{size:>9} | " + " | ".join(f"{p50:6.0f} / {p99:6.0f}" for p50, p99 in cells))
    record(
        "policy",
        {
            "rounds": rounds,
            **{
                f"{kind}_{stat}_us_{size}": value
                for size, cells in rows
                for kind, (p50, p99) in zip(("trivial", "allow", "deny"), cells, strict=True)
                for stat, value in (("p50", p50), ("p99", p99))
            },
        },
    )
    worst = max(cells[1][0] for _, cells in rows)
    verdict = "meets" if worst < TARGET_US else "misses"
    print(f"worst shipped allow p50: {worst:.0f} us, which {verdict} the {TARGET_US:.0f} us target")


if __name__ == "__main__":
    main()
