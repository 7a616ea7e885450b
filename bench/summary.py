"""One table of every benchmark's figure beside its baseline, from ``bench/results/*.json``.

Run by ``make bench`` after the benchmarks; also writes ``bench/results/summary.json``.
"""

from __future__ import annotations

import json
import sys

from results_file import RESULTS

# benchmark -> (what, broker figure, baseline figure, unit, ratio key, target)
ROWS = [
    ("grants", "JWT grants, 32 callers", "grant_rps", "bare_rps", "req/s", "ratio", 1 / 3),
    ("grants", "JWT grant p99", "grant_p99_ms", "bare_p99_ms", "ms", None, None),
    ("grants", "JWT grant p99.9", "grant_p999_ms", "bare_p999_ms", "ms", None, None),
    ("vault", "vault_token grants", "broker_rps", "direct_rps", "ok/s", "ratio", None),
    (
        "policy",
        "decision, 1,000 bindings",
        "allow_p50_us_1000",
        "trivial_p50_us_1000",
        "µs",
        None,
        None,
    ),
    ("approvals", "approval path p50", "quorum_p50_ms", "direct_p50_ms", "ms", None, None),
    (
        "verify",
        "audit verify, every core",
        "verify_rps",
        "bare_ed25519_rps",
        "records/s",
        "ratio",
        None,
    ),
    (
        "append",
        "log append, 1 replica",
        "one_records_per_s",
        "bare_records_per_s",
        "records/s",
        "one_ratio",
        None,
    ),
    (
        "append",
        "log append, 3 replicas",
        "three_records_per_s",
        "bare_records_per_s",
        "records/s",
        "three_ratio",
        None,
    ),
    ("append", "append p99, 3 replicas", "three_p99_ms", "bare_p99_ms", "ms", None, None),
    ("export", "audit export", "export_rps", "raw_read_rps", "records/s", "ratio", None),
    (
        "usage",
        "verify + usage record p50",
        "verify_usage_p50_us",
        "verify_p50_us",
        "µs",
        "ratio_p50",
        None,
    ),
    (
        "usage",
        "resource app with reporter",
        "served_usage_rps",
        "served_rps",
        "req/s",
        "served_ratio",
        None,
    ),
]


def main() -> int:
    found = {
        p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json") if p.stem != "summary"
    }
    table = []
    print(f"{'what':30}{'broker':>14}{'baseline':>14}{'ratio':>8}  unit")
    for name, what, mine, base, unit, ratio_key, target in ROWS:
        result = found.get(name)
        if result is None or mine not in result:
            continue
        ours, theirs = result[mine], result.get(base)
        ratio = result.get(ratio_key) if ratio_key else (ours / theirs if theirs else None)
        shown = f"{ratio:8.2f}" if ratio is not None else f"{'':8}"
        line = f"{what:30}{ours:>14,.2f}{(theirs if theirs is not None else float('nan')):>14,.2f}"
        note = f"  (target {target:.2f})" if target else ""
        print(f"{line}{shown}  {unit}{note}")
        table.append(
            {"what": what, "broker": ours, "baseline": theirs, "ratio": ratio, "unit": unit}
        )
    (RESULTS / "summary.json").write_text(json.dumps(table, indent=2) + "\n")
    return 0 if table else 1


if __name__ == "__main__":
    sys.exit(main())
