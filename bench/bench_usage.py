"""Micro and load benchmark: what usage reporting adds to a resource server's request path.

In process: ``GrantVerifier.verify_request`` on a live Grantline JWT, without a reporter and
with a :class:`UsageReporter` (whose thread sends batches of 500 to a broker double that
answers 202 at once), rounds of each interleaved; p50/p99 per call in µs and the ratio, the
bare cost of ``record()``, and how many broker calls the request thread made (the JWKS fetch
of the first call, and no more: every report goes from the reporter's thread).

Served (``--duration`` > 0, needs wrk): the same verifier in a FastAPI resource app under
uvicorn (one process, a sync route), without and with the reporter; requests a second and
latency, and the ratio. The JWKS and the usage endpoint are doubles in the app's process, so
the broker's own speed is not measured.

    python bench/bench_usage.py [--calls 20000] [--rounds 10] [--duration 8]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import uvicorn
from bench_grants import free_port, parse_wrk
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from results_file import record

from grantline.client import GrantVerifier, UsageReporter, public_jwk_of
from grantline.domain.jwk import thumbprint

BROKER = "http://broker.bench"
AUDIENCE = "postgres://orders-db"
URL = "http://orders.bench/v1/orders/42"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def jwks() -> dict[str, Any]:
    jwk = public_jwk_of(KEY)
    return {"keys": [{**jwk, "kid": thumbprint(jwk), "alg": "EdDSA", "grantline_purpose": "token"}]}


def token() -> str:
    now = int(time.time())
    claims = {
        "iss": BROKER,
        "sub": "spiffe://example.org/ci-runner",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "bench-jti",
        "role": "db-read",
        "request_id": "bench-request",
    }
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": jwks()["keys"][0]["kid"]})


class BrokerDouble:
    """The JWKS and ``POST /v1/usage`` (202 at once); counts calls by the thread making them."""

    def __init__(self) -> None:
        self.by_thread: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            name = threading.current_thread().name
            self.by_thread[name] = self.by_thread.get(name, 0) + 1
        if request.url.path == "/v1/usage":
            return httpx.Response(202, json={"accepted": 500, "unknown": [], "duplicate": False})
        return httpx.Response(200, json=jwks())

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def verifier(broker: BrokerDouble, usage: UsageReporter | None) -> GrantVerifier:
    return GrantVerifier(BROKER, AUDIENCE, http_client=broker.client(), usage=usage)


def reporter(broker: BrokerDouble, capacity: int = 10_000) -> UsageReporter:
    return UsageReporter(
        BROKER, "resource.server.identity", http_client=broker.client(), capacity=capacity
    )


def timed(call: Callable[[], object], count: int) -> list[float]:
    """Microseconds each of ``count`` calls took."""
    took = []
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        call()
        took.append((clock() - started) / 1000)
    return took


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[round(q * 10) - 1]


def in_process(calls: int, rounds: int) -> dict[str, Any]:
    broker = BrokerDouble()
    usage = reporter(broker)
    plain, reporting = verifier(broker, None), verifier(broker, usage)
    headers = {"Authorization": f"Bearer {token()}"}
    plain.verify_request("GET", URL, headers)  # the JWKS fetches, outside the timing
    reporting.verify_request("GET", URL, headers)
    fetched = dict(broker.by_thread)
    without: list[float] = []
    with_usage: list[float] = []
    per_round = calls // rounds
    for _ in range(rounds):
        without += timed(lambda: plain.verify_request("GET", URL, headers), per_round)
        with_usage += timed(lambda: reporting.verify_request("GET", URL, headers), per_round)
    request_thread = threading.current_thread().name
    on_request_path = broker.by_thread.get(request_thread, 0) - fetched.get(request_thread, 0)
    usage.close()
    # A burst of a million records a second: a buffer of its size, so that none is dropped.
    with reporter(BrokerDouble(), capacity=calls) as burst:
        record_only = timed(lambda: burst.record("bench-jti", "GET", "/v1/orders/42"), calls)
    return {
        "calls": per_round * rounds,
        "verify_p50_us": statistics.median(without),
        "verify_p99_us": percentile(without, 99),
        "verify_usage_p50_us": statistics.median(with_usage),
        "verify_usage_p99_us": percentile(with_usage, 99),
        "record_p50_us": statistics.median(record_only),
        "record_p99_us": percentile(record_only, 99),
        "ratio_p50": statistics.median(with_usage) / statistics.median(without),
        "ratio_p99": percentile(with_usage, 99) / percentile(without, 99),
        "request_thread_broker_calls": on_request_path,
        "reports_sent": broker.by_thread.get("grantline-usage", 0),
        "observations_sent": usage.sent,
        "observations_dropped": usage.dropped,
    }


def app(with_usage: bool) -> FastAPI:
    """The resource server: one sync route behind GrantVerifier.verify_request."""
    broker = BrokerDouble()
    check = verifier(broker, reporter(broker) if with_usage else None)
    resource = FastAPI()

    @resource.get("/v1/orders/{order}")
    def order(order: str, request: Request) -> JSONResponse:
        grant = check.verify_request(request.method, str(request.url), request.headers)
        return JSONResponse({"order": order, "for": grant.subject})

    return resource


def serve(port: int, with_usage: bool) -> None:
    uvicorn.run(app(with_usage), port=port, log_level="warning", access_log=False)


def served(duration: int, connections: int, with_usage: bool) -> dict[str, float]:
    port = free_port()
    flag = ["--usage"] if with_usage else []
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), *flag])
    url = f"http://127.0.0.1:{port}/v1/orders/42"
    bearer = token()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, headers={"Authorization": f"Bearer {bearer}"}, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the resource app did not start") from None
                time.sleep(0.1)
        args = [
            "wrk",
            "-t2",
            f"-c{connections}",
            "--latency",
            "-H",
            f"Authorization: Bearer {token()}",
        ]
        subprocess.run([*args, "-d2s", url], capture_output=True, check=True)  # warm-up
        output = subprocess.run(
            [*args, f"-d{duration}s", url], capture_output=True, text=True, check=True
        ).stdout
        figures = parse_wrk(output)
        if figures["non_2xx"]:
            raise SystemExit(f"the resource app refused {figures['non_2xx']:.0f} requests")
        return figures
    finally:
        process.terminate()
        process.wait(timeout=30)


def served_rounds(
    duration: int, connections: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Both apps, ``rounds`` times each, alternating (on a small machine one run of wrk
    varies by 10 %); the mean of each figure."""
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for n in range(rounds):
        for with_usage in (False, True) if n % 2 == 0 else (True, False):
            runs[with_usage].append(served(duration, connections, with_usage))
    return tuple(  # type: ignore[return-value]
        {key: statistics.fmean(run[key] for run in runs[flag]) for key in runs[flag][0]}
        for flag in (False, True)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=int, default=8, help="0: skip the served part")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--usage", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.usage)
        return 0
    figures = in_process(args.calls, args.rounds)
    print(f"{figures['calls']:,} calls each, in {args.rounds} interleaved rounds")
    print(f"{'request path':34}{'p50 µs':>10}{'p99 µs':>10}")
    for label, key in (
        ("verify_request", "verify"),
        ("verify_request + record", "verify_usage"),
        ("record() alone", "record"),
    ):
        print(f"{label:34}{figures[f'{key}_p50_us']:>10.1f}{figures[f'{key}_p99_us']:>10.1f}")
    print(f"with/without reporter: p50 {figures['ratio_p50']:.3f}, p99 {figures['ratio_p99']:.3f}")
    print(
        f"broker calls from the request thread while timed: "
        f"{figures['request_thread_broker_calls']}; reports sent by the reporter's thread: "
        f"{figures['reports_sent']} ({figures['observations_sent']:,} observations, "
        f"{figures['observations_dropped']} dropped)"
    )
    if args.duration > 0 and shutil.which("wrk"):
        plain, reporting = served_rounds(args.duration, args.connections, rounds=2)
        print(
            f"served resource app, {args.connections} connections, "
            f"2 alternating runs of {args.duration} s each, mean"
        )
        print(f"{'':20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for label, row in (("without reporter", plain), ("with reporter", reporting)):
            print(f"{label:20}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
        figures.update({f"served_{k}": v for k, v in plain.items()})
        figures.update({f"served_usage_{k}": v for k, v in reporting.items()})
        figures["served_ratio"] = reporting["rps"] / plain["rps"]
        print(f"with/without reporter throughput: {figures['served_ratio']:.3f}")
    record("usage", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
