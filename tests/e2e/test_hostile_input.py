"""Hostile clients against a served broker (RELIABILITY.md row 21): slow and oversized request
heads, deeply nested bodies, and bursts past the concurrency limit.

Properties: a slowloris client is cut off at the header deadline while others are served
meanwhile (no starvation); heads over the size cap get 431, bodies over theirs 413, and a deeply
nested body a 4xx (never a 500); a burst sheds load with fast 503s in our error shape with
``Retry-After``, every other answer is a normal one, and nothing is half-recorded: every
``requested`` record has its ``evaluated`` and an outcome, and the credentials handed out are
exactly the ``issued`` records.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tests.conftest import Served, export, serve

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

CALLER = "spiffe://example.org/ci-runner"
HEADER_TIMEOUT = 2.0
GRANT = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A broker with a short header deadline, so that the slow clients below are quick."""
    environment = {"GRANTLINE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT)}
    served = serve(tmp_path_factory.mktemp("hostile") / "home", extra_env=environment)
    yield served
    served.stop()


def _connect(served: Served) -> socket.socket:
    address = urlsplit(served.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _slowloris(served: Served, per_byte_seconds: float = 0.5) -> tuple[float, bytes]:
    """Sends a request head a byte at a time until the broker hangs up; how long that took,
    and what the broker answered."""
    sock = _connect(served)
    started = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 1000
    try:
        for byte in head:
            sock.sendall(bytes([byte]))
            # Wait for the next byte's turn, unless the broker answers (or hangs up) first.
            readable, _, _ = select.select([sock], [], [], per_byte_seconds)
            if readable:
                break
        return time.monotonic() - started, _read_all(sock)
    except (BrokenPipeError, ConnectionResetError):
        return time.monotonic() - started, b""
    finally:
        sock.close()


async def _slow_and_normal(served: Served) -> tuple[list[tuple[float, bytes]], list[float]]:
    """Twenty slowloris clients, and a normal client asking all the while."""
    slow = [asyncio.to_thread(_slowloris, served) for _ in range(20)]
    latencies: list[float] = []

    async def normal() -> None:
        await asyncio.sleep(0.5)  # the slow clients are connected and trickling by now
        headers = {"Authorization": f"Bearer {served.token(CALLER)}"}
        async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=5) as client:
            for _ in range(10):
                started = time.monotonic()
                response = await client.post("/v1/access-requests", json=GRANT)
                latencies.append(time.monotonic() - started)
                assert response.status_code == 201, response.text
                await asyncio.sleep(0.1)

    results = await asyncio.gather(*slow, normal())
    return [r for r in results if r is not None], latencies


def test_slowloris_clients_are_cut_off_at_the_deadline_while_others_are_served(
    guarded: Served,
) -> None:
    slow, latencies = asyncio.run(_slow_and_normal(guarded))
    for elapsed, answer in slow:
        assert HEADER_TIMEOUT - 0.5 < elapsed < HEADER_TIMEOUT + 3, elapsed
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"code": "request_timeout"' in answer
    assert len(latencies) == 10
    assert max(latencies) < 1.0, latencies


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(guarded: Served) -> None:
    sock = _connect(guarded)
    started = time.monotonic()
    try:
        assert _read_all(sock) == b""
    finally:
        sock.close()
    assert time.monotonic() - started < HEADER_TIMEOUT + 3


def test_headers_over_the_cap_get_431_before_the_app(guarded: Served) -> None:
    headers = {f"X-Padding-{i}": "a" * 4000 for i in range(10)}  # 40 KB > 32 KiB
    response = httpx.get(f"{guarded.url}/healthz", headers=headers, timeout=5)
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_headers_too_large"
    # A large head under the cap is served as usual.
    headers = {f"X-Padding-{i}": "a" * 4000 for i in range(5)}
    assert httpx.get(f"{guarded.url}/healthz", headers=headers, timeout=5).status_code == 200


def test_an_endless_header_line_gets_431(guarded: Served) -> None:
    sock = _connect(guarded)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        try:
            for _ in range(64):
                sock.sendall(b"a" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_all(sock)
    except ConnectionResetError:
        answer = b""  # refused and closed while our bytes were still arriving: also a cut-off
    finally:
        sock.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]


NESTED = {
    "arrays": "[" * 10_000 + "]" * 10_000,
    "objects": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "in-a-member": '{"target": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "unclosed": "[" * 30_000,
}


@pytest.mark.parametrize("name", list(NESTED))
def test_a_deeply_nested_body_gets_a_4xx_not_a_500(guarded: Served, name: str) -> None:
    headers = {
        "Authorization": f"Bearer {guarded.token(CALLER)}",
        "Content-Type": "application/json",
    }
    response = httpx.post(
        f"{guarded.url}/v1/access-requests", content=NESTED[name], headers=headers, timeout=10
    )
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


def test_a_streamed_body_over_the_limit_gets_413(guarded: Served) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"target": "'
        for _ in range(100):
            yield b"a" * 1024

    headers = {
        "Authorization": f"Bearer {guarded.token(CALLER)}",
        "Content-Type": "application/json",
    }
    response = httpx.post(
        f"{guarded.url}/v1/access-requests", content=chunks(), headers=headers, timeout=10
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


LIMIT = 4
BURST = 120


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Served]:
    environment = {"GRANTLINE_MAX_CONCURRENT_REQUESTS": str(LIMIT)}
    served = serve(tmp_path / "home", extra_env=environment)
    yield served
    served.stop()


async def _burst(served: Served) -> list[tuple[httpx.Response, float]]:
    headers = {"Authorization": f"Bearer {served.token(CALLER)}"}
    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(
        base_url=served.url, headers=headers, timeout=30, limits=limits
    ) as client:

        async def one() -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = await client.post("/v1/access-requests", json=GRANT)
            return response, time.monotonic() - started

        return await asyncio.gather(*(one() for _ in range(BURST)))


def test_a_burst_past_the_limit_sheds_fast_503s_and_records_nothing_partial(
    limited: Served, tmp_path: Path
) -> None:
    answers = asyncio.run(_burst(limited))
    statuses = Counter(response.status_code for response, _ in answers)
    assert set(statuses) <= {201, 503}, statuses
    assert statuses[503] > 0, statuses
    assert statuses[201] > 0, statuses
    shed = [(response, took) for response, took in answers if response.status_code == 503]
    for response, _ in shed:
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "overloaded"
    # Shed at the door: the fastest 503 took less than the fastest grant.
    fastest_grant = min(took for response, took in answers if response.status_code == 201)
    assert min(took for _, took in shed) < fastest_grant
    credentials = {
        response.json()["credential"]["token"]
        for response, _ in answers
        if response.status_code == 201
    }
    events = _events_by_request(export(limited, tmp_path / "export.jsonl"))
    issued = [rid for rid, kinds in events.items() if "issued" in kinds]
    assert len(issued) == len(credentials) == statuses[201]
    for request_id, kinds in events.items():
        if "requested" in kinds:
            assert "evaluated" in kinds, (request_id, kinds)
            assert {"issued", "denied", "failed"} & set(kinds), (request_id, kinds)


def _events_by_request(lines: list[bytes]) -> dict[str, list[str]]:
    events: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        record: dict[str, Any] = json.loads(line)
        if "request_id" in record:
            events[record["request_id"]].append(record["event"])
    return events


PER_MINUTE = 5


@pytest.fixture
def two_replicas(tmp_path: Path, redis_url: str) -> Iterator[tuple[Served, Served]]:
    """Two brokers on one store, with a per-caller rate limit."""
    environment = {"GRANTLINE_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE)}
    first = serve(tmp_path / "a", redis_url=redis_url, extra_env=environment)
    try:
        second = serve(tmp_path / "b", redis_url=redis_url, extra_env=environment)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_rate_limit_per_caller_holds_across_replicas_and_records_nothing(
    two_replicas: tuple[Served, Served], tmp_path: Path
) -> None:
    first, second = two_replicas
    # Three calls on one replica and two on the other use up the caller's minute...
    for served in (first, first, first, second, second):
        response = _grant(served)
        assert response.status_code == 201, response.text
    # ... so the next is refused on either, with our error shape and when to come back.
    for served in (first, second):
        refused = _grant(served)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60 / PER_MINUTE
    # Another caller has a minute of its own: the auditor exports, and nothing refused was kept.
    events = _events_by_request(export(first, tmp_path / "export.jsonl"))
    requested = [rid for rid, kinds in events.items() if "requested" in kinds]
    issued = [rid for rid, kinds in events.items() if "issued" in kinds]
    assert len(requested) == len(issued) == 5


def _grant(served: Served) -> httpx.Response:
    with served.client(CALLER) as client:
        return client.post("/v1/access-requests", json=GRANT)
