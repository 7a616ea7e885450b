"""Store faults against a real Valkey, nothing lost: the reliability matrix's store rows
(docs/reliability.md). Each test counts the credentials clients received against the
``issued`` records of an export, and the export must verify afterwards.

Row 1 (store down) is tests/e2e/test_failures.py; row 4 (a lost reply, retried) is
tests/integration/store/test_ledger_on_valkey.py::test_retrying_an_applied_batch_appends_nothing_twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from tests.conftest import Served, export, serve, verify

from grantline.store.valkey import EmbeddedValkey

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

CI = "spiffe://example.org/ci-runner"
BODY = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60}
# The broker's budget per store call: socket timeout 0.5 s, two retries with short backoff.
FAST_STORE = {"GRANTLINE_STORE_TIMEOUT_SECONDS": "0.5"}


@dataclass
class Answers:
    """What clients were answered: credentials received, by request id, and every status."""

    credentials: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, client: httpx.Client) -> httpx.Response:
        started = time.monotonic()
        response = client.post("/v1/access-requests", json=BODY)
        elapsed = time.monotonic() - started
        with self.lock:
            self.slowest = max(self.slowest, elapsed)
            self.statuses[response.status_code] += 1
            if response.status_code == 201:
                body = response.json()
                self.credentials[body["request_id"]] = body["credential"]["token"]
        return response


def records(served: Served, out: Path) -> list[dict[str, object]]:
    lines = export(served, out)
    return [json.loads(line) for line in lines if line.startswith(b"{")]


def issued_ids(exported: list[dict[str, object]]) -> list[str]:
    return [str(r["request_id"]) for r in exported if r.get("event") == "issued"]


def assert_nothing_lost(served: Served, answers: Answers, out: Path) -> list[str]:
    """Every credential a client holds has exactly one ``issued`` record; the export verifies.
    Returns the ``issued`` records no client was answered for."""
    exported = records(served, out)
    issued = issued_ids(exported)
    assert len(issued) == len(set(issued)), "an issued record was appended twice"
    seqs = [int(str(r["seq"])) for r in exported if "seq" in r]
    assert seqs == list(range(1, len(seqs) + 1)), "the chain has a gap or a duplicate"
    assert set(answers.credentials) <= set(issued), "a client holds a credential not recorded"
    code, output = verify(served, out)
    assert code == 0, output
    return sorted(set(issued) - set(answers.credentials))


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path / "store")
    server.start()
    yield server
    _resume(server)
    server.stop()


def _pid(server: EmbeddedValkey) -> int:
    process = server._process
    assert process is not None
    return process.pid


def _resume(server: EmbeddedValkey) -> None:
    if server._process is not None:
        os.kill(_pid(server), signal.SIGCONT)


@pytest.fixture
def broker_on(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.stop()
        assert "Traceback" not in served.log.read_text()


def test_a_hung_store_fails_requests_within_the_timeout_budget_and_loses_nothing(
    tmp_path: Path, own_store: EmbeddedValkey, broker_on: list[Served]
) -> None:
    """Row 2: SIGSTOP during load: 503 within the budget, no credential without its record,
    no duplicate after SIGCONT, and the export verifies."""
    served = serve(tmp_path / "home", redis_url=own_store.url, extra_env=FAST_STORE)
    broker_on.append(served)
    answers, stop = Answers(), threading.Event()

    def caller() -> None:
        with served.client(CI) as client:
            while not stop.is_set():
                answers.post(client)

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for thread in callers:
        thread.start()
    time.sleep(0.5)
    os.kill(_pid(own_store), signal.SIGSTOP)
    time.sleep(3)
    with served.client(CI) as client:
        during = answers.post(client)
    os.kill(_pid(own_store), signal.SIGCONT)
    time.sleep(1)
    stop.set()
    for thread in callers:
        thread.join(timeout=30)
    assert during.status_code == 503
    assert during.json()["error"]["code"] == "store_unavailable"
    assert "credential" not in during.json()
    # Bounded by the store timeout times retries, not hanging; generous for a loaded CI machine.
    assert answers.slowest < 10
    assert set(answers.statuses) <= {201, 503}
    assert answers.statuses[201] > 0 and answers.statuses[503] > 0
    unanswered = assert_nothing_lost(served, answers, tmp_path / "export.jsonl")
    # An append the store applied after its caller gave up is recorded but was never handed
    # out: at most one per caller in flight when the store stopped.
    assert len(unanswered) <= len(callers)


def _data(record: dict[str, object]) -> dict[str, object]:
    data = record.get("data")
    return data if isinstance(data, dict) else {}


def test_a_full_store_refuses_writes_with_503_and_reports_not_ready(
    tmp_path: Path, own_store: EmbeddedValkey, broker_on: list[Served]
) -> None:
    """Row 6: maxmemory reached under noeviction: 503 on write, no credential, readiness
    false with the reason; start-up's refusal of an evicting policy is in
    tests/integration/store/test_durability_on_valkey.py."""
    served = serve(tmp_path / "home", redis_url=own_store.url, extra_env=FAST_STORE)
    broker_on.append(served)
    answers = Answers()
    with served.client(CI) as client:
        assert answers.post(client).status_code == 201
        store = redis.Redis.from_url(own_store.url)
        used = int(store.info("memory")["used_memory"])
        store.config_set("maxmemory", str(used // 2))
        refused = answers.post(client)
        time.sleep(2.1)  # past the readiness cache
        ready = httpx.get(f"{served.url}/readyz")
        store.config_set("maxmemory", "0")
        store.close()
    assert refused.status_code == 503
    assert "credential" not in refused.json()
    assert ready.status_code == 503
    assert ready.json()["checks"]["persistence"] is False
    assert ready.json()["reasons"][0].startswith("maxmemory reached")
    assert assert_nothing_lost(served, answers, tmp_path / "export.jsonl") == []


WAITAOF_ONE_REPLICA = {
    **FAST_STORE,
    "GRANTLINE_STORE_DURABILITY": "waitaof",
    "GRANTLINE_STORE_WAITAOF_REPLICAS": "1",
    "GRANTLINE_STORE_WAITAOF_TIMEOUT_MS": "100",
}


@pytest.fixture
def replica(tmp_path: Path, own_store: EmbeddedValkey) -> Iterator[EmbeddedValkey]:
    """A replica of ``own_store``, in sync before the test starts."""
    server = EmbeddedValkey(tmp_path / "replica")
    server.start()
    primary = redis.Redis.from_url(own_store.url)
    password = primary.connection_pool.connection_kwargs["password"]
    follower = redis.Redis.from_url(server.url)
    follower.config_set("masterauth", password)
    follower.replicaof("127.0.0.1", own_store.port)
    # In sync once it confirms a write in its AOF: after the first full sync the replica
    # rewrites its AOF, and confirms nothing until that is done.
    deadline = time.monotonic() + 15
    while True:
        primary.set("replica-probe", "1")
        if primary.waitaof(1, 1, 200) == [1, 1]:
            break
        assert time.monotonic() < deadline, "the replica did not sync"
        time.sleep(0.1)
    primary.delete("replica-probe")
    primary.close()
    follower.close()
    yield server
    server.stop()


def test_waitaof_short_of_a_required_replica_issues_nothing(
    tmp_path: Path, own_store: EmbeddedValkey, replica: EmbeddedValkey, broker_on: list[Served]
) -> None:
    """Row 5: WAITAOF with one replica required; the replica stops answering: the append is
    treated as not durable, 503 and no credential. The unconfirmed write is on the primary,
    so once the replica is back the broker revokes each of those grants as withheld: the
    log never goes on saying someone holds a credential nobody received."""
    served = serve(tmp_path / "home", redis_url=own_store.url, extra_env=WAITAOF_ONE_REPLICA)
    broker_on.append(served)
    answers = Answers()
    with served.client(CI) as client:
        assert answers.post(client).status_code == 201
        os.kill(_pid(replica), signal.SIGSTOP)
        try:
            refused = [answers.post(client) for _ in range(3)]
        finally:
            _resume(replica)
    for response in refused:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_not_durable"
        assert "token" not in response.text
    assert len(answers.credentials) == 1
    unanswered = assert_nothing_lost(served, answers, tmp_path / "export.jsonl")
    assert len(unanswered) == len(refused), "each refused append is on the primary"
    deadline = time.monotonic() + 20
    while True:
        exported = records(served, tmp_path / "after.jsonl")
        withheld = {
            str(r["request_id"])
            for r in exported
            if r.get("event") == "revoked" and _data(r).get("source") == "withheld"
        }
        if withheld == set(unanswered) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert withheld == set(unanswered), "a grant nobody received still reads as held"
    assert verify(served, tmp_path / "after.jsonl")[0] == 0


def test_a_broker_requiring_a_replica_that_is_missing_refuses_to_start(
    tmp_path: Path, own_store: EmbeddedValkey
) -> None:
    """Row 5 at start-up: its first record (the policy activation) is not confirmed by the
    required replica, so the broker exits instead of serving."""
    with pytest.raises(AssertionError, match=r"store_not_durable|1 replicas required"):
        serve(tmp_path / "home", redis_url=own_store.url, extra_env=WAITAOF_ONE_REPLICA)


def _mount_small_disk(path: Path) -> bool:
    path.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _fill(path: Path) -> None:
    with (path / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


@pytest.fixture
def store_on_small_disk(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    """A Valkey whose data directory is an 8 MB tmpfs the test can fill (root only: as root,
    chmod does not stop writes, a full filesystem does)."""
    disk = tmp_path / "disk"
    if not _mount_small_disk(disk):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    server = EmbeddedValkey(disk / "store")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_store_that_cannot_write_its_aof_fails_writes_and_readiness(
    tmp_path: Path, store_on_small_disk: EmbeddedValkey, broker_on: list[Served]
) -> None:
    """Row 7: the data directory's filesystem is full. With appendfsync always Valkey cannot
    acknowledge the write and exits rather than break its promise: 503, readiness false, and
    the credential handed out before the fault is still recorded."""
    served = serve(tmp_path / "home", redis_url=store_on_small_disk.url, extra_env=FAST_STORE)
    broker_on.append(served)
    answers = Answers()
    with served.client(CI) as client:
        assert answers.post(client).status_code == 201
        _fill(store_on_small_disk.directory)
        refused = answers.post(client)
    assert refused.status_code == 503
    assert "credential" not in refused.json()
    time.sleep(2.1)  # past the readiness cache
    ready = httpx.get(f"{served.url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["persistence"] is False
    assert answers.statuses == Counter({201: 1, 503: 1})
    # What was acknowledged before the fault survives a restart on a disk with room.
    (store_on_small_disk.directory / "filler").unlink()
    store_on_small_disk.stop()
    store_on_small_disk.start()
    served.stop()
    again = serve(tmp_path / "home2", redis_url=store_on_small_disk.url, extra_env=FAST_STORE)
    broker_on.append(again)
    exported = records(again, tmp_path / "export.jsonl")
    assert set(answers.credentials) <= set(issued_ids(exported))
