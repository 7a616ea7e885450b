"""Load benchmark: broker-mediated vault_token grants beside direct token creation in OpenBao.

Starts one in-memory OpenBao dev server (prepared as ``grantline serve`` would prepare it)
and ``grantline serve`` in a temporary home pointed at it, then drives, for the same time
and with the same number of concurrent clients:

- direct: ``auth/token/create/grantline`` with hvac and the broker's own Vault token, the
  call at the heart of every vault_token grant;
- broker: ``POST /v1/access-requests`` for a 60-second ``vault-kv-read`` vault_token grant,
  rotating over 64 identity tokens of the one subject bound to that role.

Both sides use the same driver (one thread and one HTTP session per connection, timing each
call), so the Python client's overhead weighs on both alike. A broker grant also looks the
new token up by accessor and records the grant, which is the overhead being measured.
Reports calls a second, p50/p99 latency, and the broker/direct throughput ratio; the target
is a ratio of at least 0.60. Everything runs on loopback and stops by itself.

    python bench/bench_vault.py [--duration 10] [--connections 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import hvac
import requests
from bench_grants import free_port, start_broker  # run as a script: bench/ is on the path
from results_file import record

from grantline.config import Settings, dev_issuer
from grantline.issuers.vault.devserver import DevOpenBao, prepare_for_grantline

SUBJECT = "spiffe://example.org/ci-runner"  # the only subject bound to vault-kv-read
IDENTITY_TOKENS = 64
WARM_UP_SECONDS = 2.0
TARGET_RATIO = 0.60
GRANT = {
    "target": "vault://secret",
    "role": "vault-kv-read",
    "credential_type": "vault_token",
    "ttl_seconds": 60,
    "purpose": "bench",
}

# One call: True when it succeeded, else False and the error text.
Call = Callable[[], tuple[bool, str]]


@dataclass
class Result:
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def drive(make_call: Callable[[int], Call], seconds: float, connections: int) -> Result:
    """Run ``connections`` closed loops of calls for ``seconds``, timing each call."""
    result = Result()
    lock = threading.Lock()
    start = time.perf_counter()
    end = start + seconds

    def loop(index: int) -> None:
        call = make_call(index)
        latencies: list[float] = []
        ok, failed, first_error = 0, 0, ""
        while (before := time.perf_counter()) < end:
            succeeded, error = call()
            latencies.append((time.perf_counter() - before) * 1000)
            if succeeded:
                ok += 1
            else:
                failed += 1
                first_error = first_error or error
        with lock:
            result.ok += ok
            result.failed += failed
            result.latencies_ms += latencies
            result.first_error = result.first_error or first_error

    with ThreadPoolExecutor(max_workers=connections) as pool:
        for future in [pool.submit(loop, i) for i in range(connections)]:
            future.result()
    result.seconds = time.perf_counter() - start
    return result


def direct_call(addr: str, token: str) -> Callable[[int], Call]:
    def make(_index: int) -> Call:
        client = hvac.Client(url=addr, token=token, timeout=10, session=requests.Session())

        def call() -> tuple[bool, str]:
            try:
                client.auth.token.create(
                    role_name="grantline",
                    policies=["grantline-kv-read"],
                    ttl="60s",
                    explicit_max_ttl="60s",
                    renewable=False,
                    meta={"grantline_request_id": "bench"},
                )
            except (hvac.exceptions.VaultError, requests.RequestException) as exc:
                return False, f"{type(exc).__name__}: {exc}"
            return True, ""

        return call

    return make


def broker_call(base: str, identity_tokens: list[str]) -> Callable[[int], Call]:
    def make(index: int) -> Call:
        client = httpx.Client(base_url=base, timeout=10)
        # Each connection starts at its own offset so the rotation spreads over all tokens.
        rotation = itertools.cycle(identity_tokens[index:] + identity_tokens[:index])

        def call() -> tuple[bool, str]:
            headers = {"Authorization": f"Bearer {next(rotation)}"}
            try:
                response = client.post("/v1/access-requests", json=GRANT, headers=headers)
            except httpx.HTTPError as exc:
                return False, f"{type(exc).__name__}: {exc}"
            if response.status_code != 201:
                return False, f"{response.status_code}: {response.text[:500]}"
            return True, ""

        return call

    return make


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grantline-bench-") as tmp:
        bao = DevOpenBao(Path(tmp) / "bao.log")
        addr = bao.start()
        try:
            broker_token = prepare_for_grantline(bao.root())
            home, port = Path(tmp) / "home", free_port()
            broker = start_broker(
                home,
                port,
                args.workers,
                extra_env={
                    "GRANTLINE_VAULT_ADDR": addr,
                    "GRANTLINE_VAULT_TOKEN": broker_token,
                    # The reconciler lists every token accessor: it would compete with the load.
                    "GRANTLINE_RECONCILE_SECONDS": "0",
                },
                log=Path(tmp) / "broker.log",
            )
            try:
                issuer = dev_issuer(Settings(home=home))
                identity_tokens = [issuer.mint(SUBJECT) for _ in range(IDENTITY_TOKENS)]
                direct = direct_call(addr, broker_token)
                granted = broker_call(f"http://127.0.0.1:{port}", identity_tokens)
                # Warm-ups open the connections and fill the broker's caches before timing.
                drive(direct, WARM_UP_SECONDS, args.connections)
                drive(granted, WARM_UP_SECONDS, args.connections)
                baseline = drive(direct, args.duration, args.connections)
                brokered = drive(granted, args.duration, args.connections)
            finally:
                broker.terminate()
                broker.wait(timeout=30)
        finally:
            bao.stop()
    report(baseline, brokered, args)
    if brokered.failed > brokered.ok or baseline.failed > baseline.ok:
        first = brokered.first_error or baseline.first_error
        print(f"most calls failed; first error: {first}", file=sys.stderr)
        return 1
    return 0


def report(direct: Result, broker: Result, args: argparse.Namespace) -> None:
    print(
        f"{args.workers} broker workers, {args.connections} connections, "
        f"{args.duration:g} s each, one OpenBao dev server"
    )
    print(f"{'path':<36}{'ok/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>10}")
    rows = (("direct token create (hvac)", direct), ("POST vault_token grant (broker)", broker))
    for name, row in rows:
        print(
            f"{name:<36}{row.rps:>10.0f}{row.percentile(50):>10.2f}"
            f"{row.percentile(99):>10.2f}{row.failed:>10d}"
        )
    ratio = broker.rps / direct.rps if direct.rps else float("nan")
    record(
        "vault",
        {
            "connections": args.connections,
            "direct_rps": direct.rps,
            "broker_rps": broker.rps,
            "direct_p99_ms": direct.percentile(99),
            "broker_p99_ms": broker.percentile(99),
            "ratio": ratio,
        },
    )
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"broker/direct throughput ratio: {ratio:.2f} (target {TARGET_RATIO:.2f}: {verdict})")
    for name, row in rows:
        if row.first_error:
            print(f"first {name} error: {row.first_error}")


if __name__ == "__main__":
    sys.exit(main())
