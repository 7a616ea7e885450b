"""Log append rate with one and with three replicas, beside bare stream writes to the same store.

Starts an embedded Valkey (AOF with an fsync per write, as the broker requires) and runs 32
concurrent appenders for ``--duration`` seconds, each appending one grant's records at a
time (requested, evaluated, approved, issued: four signed, chained records, with the Merkle
tree and the request state, in one atomic write):

- through the broker's ledger in one process (one replica), then split over three processes
  (three replicas racing for one chain head);
- the baseline: the same 32 appenders writing the same four lines with a bare ``XADD`` each,
  pipelined, unsigned, unchained, from one process.

Reports records a second and p50/p99/p99.9 latency of one append for each, and the ratio of
each ledger run to the baseline; the chain is checked to be unbroken after each ledger run.

    python bench/bench_append.py [--duration 10] [--appenders 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from results_file import record

from grantline.evidence.signer import LocalEd25519Signer
from grantline.store import keys
from grantline.store.connection import StoreSettings, connect
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import RedisLog
from grantline.store.valkey import EmbeddedValkey

EVENTS = ("requested", "evaluated", "approved", "issued")
SEED = bytes(range(32))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _ledger_appenders(url: str, appenders: int, duration: float, name: str) -> list[float]:
    client = connect(StoreSettings(url, socket_timeout=10))
    ledger = Ledger(RedisLog(client), LocalEd25519Signer.from_seed(SEED))
    latencies: list[float] = []
    deadline = time.monotonic() + duration

    async def appender(index: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            request_id = f"{name}-{index}-{n}"
            at = datetime.now(UTC)
            drafts = [Draft(request_id, event, at, {"role": "db-read", "n": n}) for event in EVENTS]
            started = time.perf_counter()
            await ledger.append(drafts)
            latencies.append(time.perf_counter() - started)
            n += 1

    await asyncio.gather(*(appender(i) for i in range(appenders)))
    await client.aclose()
    return latencies


def _replica(
    url: str, appenders: int, duration: float, name: str, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_ledger_appenders(url, appenders, duration, name)))


def ledger_run(url: str, replicas: int, appenders: int, duration: float) -> dict[str, float]:
    redis.Redis.from_url(url).flushall()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    shares = [
        appenders // replicas + (1 if i < appenders % replicas else 0) for i in range(replicas)
    ]
    processes = [
        multiprocessing.Process(target=_replica, args=(url, share, duration, f"r{i}", queue))
        for i, share in enumerate(shares)
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    latencies = [value for _ in processes for value in queue.get()]
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    client = redis.Redis.from_url(url)
    records = client.xlen(keys.LOG)
    head = client.get(keys.HEAD)
    assert head is not None and int(head.split(b" ")[0]) == records, "the chain is broken"
    return summary(records, elapsed, latencies)


async def _bare_appenders(url: str, appenders: int, duration: float) -> list[float]:
    client = connect(StoreSettings(url, socket_timeout=10))
    latencies: list[float] = []
    deadline = time.monotonic() + duration
    line = b'{"event":"issued","request_id":"x","data":{"role":"db-read"}}' * 3

    async def appender() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for _ in EVENTS:
                pipe.xadd("bench:bare", {"r": line})
            await pipe.execute()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(appender() for _ in range(appenders)))
    await client.aclose()
    return latencies


def bare_run(url: str, appenders: int, duration: float) -> dict[str, float]:
    redis.Redis.from_url(url).flushall()
    started = time.perf_counter()
    latencies = asyncio.run(_bare_appenders(url, appenders, duration))
    elapsed = time.perf_counter() - started
    return summary(redis.Redis.from_url(url).xlen("bench:bare"), elapsed, latencies)


def summary(records: int, elapsed: float, latencies: list[float]) -> dict[str, float]:
    return {
        "records_per_s": records / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "p999_ms": percentile(latencies, 0.999) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--appenders", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grantline-bench-") as tmp:
        valkey = EmbeddedValkey(Path(tmp) / "valkey")
        url = valkey.start()
        try:
            bare = bare_run(url, args.appenders, args.duration)
            one = ledger_run(url, 1, args.appenders, args.duration)
            three = ledger_run(url, 3, args.appenders, args.duration)
        finally:
            valkey.stop()
    print(
        f"{args.appenders} appenders, {len(EVENTS)} records an append, {args.duration:.0f} s each"
    )
    print(f"{'writer':<34}{'records/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'ratio':>7}")
    rows = (
        ("bare XADD (baseline)", bare),
        ("ledger, 1 replica", one),
        ("ledger, 3 replicas", three),
    )
    for label, row in rows:
        print(
            f"{label:<34}{row['records_per_s']:>11,.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['p999_ms']:>10.2f}{row['records_per_s'] / bare['records_per_s']:>7.2f}"
        )
    record(
        "append",
        {
            "appenders": args.appenders,
            "duration_s": args.duration,
            **{f"bare_{k}": v for k, v in bare.items()},
            **{f"one_{k}": v for k, v in one.items()},
            **{f"three_{k}": v for k, v in three.items()},
            "one_ratio": one["records_per_s"] / bare["records_per_s"],
            "three_ratio": three["records_per_s"] / bare["records_per_s"],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
