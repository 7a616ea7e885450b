"""Load benchmark: JWT grants through a served broker, beside a bare endpoint of the same app.

Starts ``grantline serve`` on its embedded defaults in a temporary home, then drives it with
wrk (Debian's package): first the bare ``/healthz`` endpoint (same app, same middleware, no
work), then ``POST /v1/access-requests`` for JWT grants. Requests rotate over 512 workload
identities (a fleet, each holding one or two live grants), each presenting a real identity
token; the grants are one-second report-read JWTs, so the policy input stays realistic.
Reports requests a second and p50/p90/p99 latency for both, and the ratio. Everything runs
on loopback and stops by itself.

    python bench/bench_grants.py [--duration 15] [--connections 32] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from results_file import record

from grantline.config import Settings, dev_issuer

REPO = Path(__file__).resolve().parent.parent
GRANTLINE = str(Path(sys.executable).parent / "grantline")
SUBJECTS = 512

LUA = (
    """
tokens = {%(tokens)s}
counter = 0
body = '{"target": "s3://reports", "role": "report-read", "ttl_seconds": 1, "purpose": "bench"}'
request = function()
  counter = counter + 1
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. tokens[(counter %% #tokens) + 1]
  return wrk.format("POST", "/v1/access-requests", headers, body)
end
"""
    + "%(done)s"
)

# wrk's --latency table stops at p99; its done() hook gives any percentile (microseconds).
DONE = """
done = function(summary, latency, requests)
  io.write(string.format("p999_us: %d\\n", latency:percentile(99.9)))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(
    home: Path,
    port: int,
    workers: int,
    *,
    extra_env: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``grantline serve`` in ``home`` on ``port``, once ready; its output goes to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLINE_")}
    env.update(GRANTLINE_HOME=str(home), GRANTLINE_LOG_LEVEL="warning", **(extra_env or {}))
    with open(log or os.devnull, "ab") as out:
        process = subprocess.Popen(
            [
                GRANTLINE,
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--policies",
                str(REPO / "policies"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    tail = log.read_text()[-2000:] if log else ""
    raise SystemExit(f"the broker did not become ready\n{tail}")


def tokens(home: Path) -> list[str]:
    """Identity tokens of SUBJECTS workloads, minted by the broker's dev issuer."""
    issuer = dev_issuer(Settings(home=home))
    return [issuer.mint(f"spiffe://example.org/ns/batch/job-{i}") for i in range(SUBJECTS)]


def wrk(url: str, script: Path | None, duration: int, connections: int) -> dict[str, float]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if script:
        args += ["-s", str(script)]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> dict[str, float]:
    def millis(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p999 = re.search(r"^p999_us: (\d+)", output, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p50_ms": millis("50%"),
        "p90_ms": millis("90%"),
        "p99_ms": millis("99%"),
        "p999_ms": int(p999.group(1)) / 1000 if p999 else float("nan"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="grantline-bench-") as tmp:
        home, port = Path(tmp) / "home", free_port()
        broker = start_broker(home, port, args.workers)
        try:
            script = Path(tmp) / "grant.lua"
            listed = ", ".join(f'"{t}"' for t in tokens(home))
            script.write_text(LUA % {"tokens": listed, "done": DONE})
            bare_script = Path(tmp) / "bare.lua"
            bare_script.write_text(DONE.replace("\\\\", "\\"))
            base = f"http://127.0.0.1:{port}"
            wrk(f"{base}/healthz", None, 3, args.connections)  # warm-up
            bare = wrk(f"{base}/healthz", bare_script, args.duration, args.connections)
            grants = wrk(f"{base}/v1/access-requests", script, args.duration, args.connections)
        finally:
            broker.terminate()
            broker.wait(timeout=30)
    report(bare, grants, args)
    return 0


def report(bare: dict[str, float], grants: dict[str, float], args: argparse.Namespace) -> None:
    print(f"{args.workers} broker workers, {args.connections} connections, {args.duration} s each")
    print(
        f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'p99.9 ms':>10}"
    )
    for name, row in (("GET /healthz (bare)", bare), ("POST JWT grant", grants)):
        print(
            f"{name:<28}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}"
            f"{row['p90_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['p999_ms']:>10.2f}"
        )
    print(f"grant/bare throughput ratio: {grants['rps'] / bare['rps']:.2f}")
    record(
        "grants",
        {
            "workers": args.workers,
            "connections": args.connections,
            "duration_s": args.duration,
            **{f"bare_{k}": v for k, v in bare.items()},
            **{f"grant_{k}": v for k, v in grants.items()},
            "ratio": grants["rps"] / bare["rps"],
        },
    )
    print(f"grant responses that were not 2xx: {grants['non_2xx']:.0f}")


if __name__ == "__main__":
    sys.exit(main())
