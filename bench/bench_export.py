"""Export of a large log through a served broker, beside reading the same stream from Redis.

Starts an embedded Valkey and fills its log with ``--records`` records (default one million)
through the broker's own ledger (signed, chained, with the Merkle tree), then serves a broker
on it and times ``grantline audit export`` (HTTP pages of signed lines, written to a file,
ending with a checkpoint) beside the baseline: redis-py reading the whole stream directly in
pages of the same size. Reports records a second for both and their ratio.

    python bench/bench_export.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from bench_grants import free_port, start_broker  # run as a script: bench/ is on the path
from bench_verify import flows
from results_file import record

from grantline.config import Settings, dev_issuer, log_signer
from grantline.store import keys
from grantline.store.connection import StoreSettings, connect
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import RedisLog
from grantline.store.valkey import EmbeddedValkey

GRANTLINE = str(Path(sys.executable).parent / "grantline")
T0 = datetime(2026, 11, 23, tzinfo=UTC)
PAGE = 2000


async def fill(url: str, home: Path, records: int) -> None:
    """Append ``records`` records with the broker's log key, 64 requests at a time."""
    client = connect(StoreSettings(url, socket_timeout=30))
    ledger = Ledger(RedisLog(client), log_signer(Settings(home=home)))
    written, n = 0, 0
    while written < records:
        groups = []
        for _ in range(64):
            drafts = [
                Draft(f"req-{n}", event, T0 + timedelta(milliseconds=n), data)
                for event, data in flows(n)
            ][: records - written]
            if not drafts:
                break
            groups.append(drafts)
            written += len(drafts)
            n += 1
        await asyncio.gather(*(ledger.append(group) for group in groups))
    await client.aclose()


def raw_read(url: str) -> int:
    client = redis.Redis.from_url(url)
    count, after = 0, "-"
    while True:
        entries = client.xrange(keys.LOG, min=after, max="+", count=PAGE)
        if not entries:
            break
        count += len(entries)
        last = entries[-1][0].decode()
        seq = int(last.split("-")[0])
        after = f"{seq + 1}-0"
    client.close()
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grantline-bench-") as tmp:
        home = Path(tmp) / "home"
        valkey = EmbeddedValkey(Path(tmp) / "valkey")
        url = valkey.start()
        try:
            started = time.perf_counter()
            asyncio.run(fill(url, home, args.records))
            filled = time.perf_counter() - started
            started = time.perf_counter()
            assert raw_read(url) == args.records
            raw = time.perf_counter() - started
            port = free_port()
            broker = start_broker(home, port, 1, extra_env={"GRANTLINE_REDIS_URL": url})
            try:
                env = {
                    **os.environ,
                    "GRANTLINE_HOME": str(home),
                    "GRANTLINE_URL": f"http://127.0.0.1:{port}",
                    "GRANTLINE_TOKEN": dev_issuer(Settings(home=home)).mint("user:auditor"),
                }
                out = Path(tmp) / "export.jsonl"
                started = time.perf_counter()
                subprocess.run(
                    [GRANTLINE, "audit", "export", "--out", str(out)],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                exported = time.perf_counter() - started
                size_mb = out.stat().st_size / 1e6
            finally:
                broker.terminate()
                broker.wait(timeout=15)
        finally:
            valkey.stop()
    print(f"{args.records:,} records appended through the ledger in {filled:.0f} s")
    print(f"{'what':44} {'seconds':>8} {'records/s':>11}")
    print(f"{'redis-py XRANGE of the stream (baseline)':44} {raw:8.1f} {args.records / raw:11,.0f}")
    print(
        f"{'grantline audit export (' + f'{size_mb:,.0f} MB)':44} {exported:8.1f} "
        f"{args.records / exported:11,.0f}"
    )
    print(f"export / raw read throughput ratio: {raw / exported:.2f}")
    record(
        "export",
        {
            "records": args.records,
            "raw_read_rps": args.records / raw,
            "export_rps": args.records / exported,
            "export_seconds": exported,
            "ratio": raw / exported,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
