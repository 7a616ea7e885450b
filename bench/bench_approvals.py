"""Latency of the approval path beside a direct grant, through one served broker.

Starts ``grantline serve`` on its embedded defaults in a temporary home. Then, one call at a
time (a person approving is not a load pattern; the point is what each step costs):

- baseline: ``POST /v1/access-requests`` for a role allowed by policy alone (201, a JWT);
- the approval path for ``report-write`` (1 of security): the request (202, with the
  eligible approvers), the approval that meets the quorum (decides again, issues), and the
  requester's collection of the credential;
- a two-factor ``db-admin`` request (1 of security and 2 of on-call) through its three
  approvals.

Reports p50/p90/p99 of each step in milliseconds and each step's ratio to the baseline.

    python bench/bench_approvals.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from bench_grants import free_port, start_broker  # run as a script: bench/ is on the path
from results_file import record

from grantline.config import Settings, dev_issuer

PEOPLE = ("user:alice", "user:sam", "user:bob", "user:carol")


def timed(samples: dict[str, list[float]], name: str, call: Callable[[], httpx.Response]) -> Any:
    started = time.perf_counter()
    response = call()
    samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    if response.status_code >= 300 and response.status_code != 202:
        raise SystemExit(f"{name}: {response.status_code} {response.text}")
    return response.json()


def one_round(clients: dict[str, httpx.Client], samples: dict[str, list[float]]) -> None:
    alice, sam = clients["user:alice"], clients["user:sam"]
    timed(
        samples,
        "direct grant (baseline)",
        lambda: alice.post(
            "/v1/access-requests",
            json={"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60},
        ),
    )
    body = {"target": "s3://reports", "role": "report-write", "ttl_seconds": 60}
    pending = timed(samples, "request -> 202", lambda: alice.post("/v1/access-requests", json=body))
    rid = pending["request_id"]
    timed(
        samples,
        "approve, quorum met -> issued",
        lambda: sam.post(f"/v1/access-requests/{rid}/approve", json={"reason": "bench"}),
    )
    timed(samples, "collect", lambda: alice.get(f"/v1/access-requests/{rid}/credential"))
    admin = {"target": "postgres://orders-db", "role": "db-admin", "ttl_seconds": 60}
    rid = alice.post("/v1/access-requests", json=admin).json()["request_id"]
    for approver, step in (("user:bob", "1 of 3"), ("user:carol", "2 of 3")):
        timed(
            samples,
            f"approve {step} (still pending)",
            lambda a=approver: clients[a].post(
                f"/v1/access-requests/{rid}/approve", json={"reason": "bench"}
            ),
        )
    timed(
        samples,
        "approve 3 of 3 -> issued",
        lambda: sam.post(f"/v1/access-requests/{rid}/approve", json={"reason": "bench"}),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grantline-bench-") as tmp:
        home, port = Path(tmp) / "home", free_port()
        broker = start_broker(home, port, 1, extra_env={"GRANTLINE_RECONCILE_SECONDS": "0"})
        try:
            issuer = dev_issuer(Settings(home=home))
            clients = {
                who: httpx.Client(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {issuer.mint(who)}"},
                    timeout=10,
                )
                for who in PEOPLE
            }
            samples: dict[str, list[float]] = {}
            for _ in range(10):  # warm-up, not counted
                one_round(clients, {})
            for _ in range(args.rounds):
                one_round(clients, samples)
        finally:
            broker.terminate()
            broker.wait(timeout=15)
    report(samples, args.rounds)
    return 0


def report(samples: dict[str, list[float]], rounds: int) -> None:
    base = statistics.median(samples["direct grant (baseline)"])
    record(
        "approvals",
        {
            "rounds": rounds,
            "direct_p50_ms": base,
            "quorum_p50_ms": statistics.median(samples["approve, quorum met -> issued"]),
            "steps": {
                name: {"p50_ms": statistics.median(v), "p99_ms": percentile(v, 0.99)}
                for name, v in samples.items()
            },
        },
    )
    print(f"1 broker worker, sequential calls, {rounds} rounds")
    print(f"{'step':34} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p50/base':>9}")
    for name, values in samples.items():
        p50 = statistics.median(values)
        print(
            f"{name:34} {p50:8.2f} {percentile(values, 0.9):8.2f} "
            f"{percentile(values, 0.99):8.2f} {p50 / base:9.1f}"
        )


if __name__ == "__main__":
    sys.exit(main())
