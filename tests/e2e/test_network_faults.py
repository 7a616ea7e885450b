"""Network faults between the broker and its servers, nothing lost: the reliability matrix's
store and Vault rows with the network broken in between (docs/reliability.md, "Network
faults").

A served broker reaches a real Valkey and a real OpenBao each through a FaultyProxy
(tests/faults/proxy.py). Client threads post JWT (``db-read``) and ``vault_token``
(``vault-kv-read``) requests while one fault is on, then the proxy heals. Every test then
checks, beyond what its own docstring adds:

- every answer is 201, a 4xx or a 503 with an error code and no credential: never a 500,
  never slower than ``BUDGET``;
- after healing, both kinds get 201s again;
- every credential a client was handed matches exactly one ``issued`` record (its request
  id and the fingerprint of its secret), no ``issued`` record appears twice, the chain has no
  gap, and ``grantline audit verify`` passes on the export;
- after one reconciliation pass, every token alive in OpenBao that the broker minted (its
  token role, a request id in its metadata) is one a client was handed and recorded as
  issued: no orphan credential stays live; and every token a client was handed is alive.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import hvac.exceptions
import pytest
from tests.conftest import Bao, Served, export, serve, verify
from tests.faults.proxy import FaultyProxy
from tests.scale import scale

from grantline.identity.dev_issuer import DevIssuer

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

CI = "spiffe://example.org/ci-runner"
OPERATOR = "user:operator"
AUDITOR = "user:auditor"
BODIES: dict[str, dict[str, Any]] = {
    "jwt": {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 600},
    "vault_token": {
        "target": "vault://secret",
        "role": "vault-kv-read",
        "credential_type": "vault_token",
        "ttl_seconds": 600,
    },
}
# Store calls: 0.5 s socket timeout, two retries. Vault calls: 1 s, never retried.
SETTINGS = {
    "GRANTLINE_STORE_TIMEOUT_SECONDS": "0.5",
    "GRANTLINE_VAULT_TIMEOUT_SECONDS": "1",
    # The pass after the run judges every grant token, however young.
    "GRANTLINE_RECONCILE_GRACE_SECONDS": "0",
    "GRANTLINE_RECONCILE_ISSUE_DELAY_SECONDS": "0",
}
# The longest any answer may take under any fault (a few store and Vault timeouts in a row;
# generous for a loaded CI machine). A client waiting longer records a hang.
BUDGET = 10.0
CALLERS_PER_KIND = 2
FAULT_SECONDS = 2.0 * scale()
HEAL_WITHIN = 15.0
ANSWERED_CODES = {
    "store_unavailable",
    "store_contention",
    "vault_unavailable",
    "vault_timeout",
    "vault_error",
}
# What only an unhandled error logs (a handled fault may log a traceback on purpose, such as
# "could not record the failure of request ...").
UNHANDLED = ("Exception in ASGI application", "Task exception was never retrieved")


# What a Vault token (OpenBao's s., Vault's hvs./hvb.) or a JWT looks like in a body.
SECRET = re.compile(r"\b(?:hvs|hvb|s)\.[A-Za-z0-9]{20,}|eyJ[\w-]+\.eyJ")


@dataclass(frozen=True)
class Answer:
    kind: str
    started: float
    elapsed: float
    status: int  # 0: no answer within the client's timeout; -1: the connection failed
    code: str = ""
    request_id: str = ""
    secret: str = ""
    accessor: str = ""
    leaked: bool = False  # a credential in a non-201 answer


@dataclass
class Answers:
    """Every answer clients got, in the order they came."""

    all: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, client: httpx.Client, kind: str) -> Answer:
        started = time.monotonic()
        try:
            response = client.post("/v1/access-requests", json=BODIES[kind])
        except httpx.TimeoutException:
            answer = Answer(kind, started, time.monotonic() - started, 0)
        except httpx.TransportError as exc:
            answer = Answer(kind, started, time.monotonic() - started, -1, type(exc).__name__)
        else:
            answer = _answer(kind, started, response)
        with self.lock:
            self.all.append(answer)
        return answer

    def issued(self, kind: str | None = None) -> list[Answer]:
        with self.lock:
            return [a for a in self.all if a.status == 201 and kind in (None, a.kind)]

    def tally(self, since: float = 0.0) -> dict[str, Counter[int]]:
        with self.lock:
            chosen = [a for a in self.all if a.started >= since]
        return {kind: Counter(a.status for a in chosen if a.kind == kind) for kind in BODIES}


def _answer(kind: str, started: float, response: httpx.Response) -> Answer:
    elapsed = time.monotonic() - started
    body = response.json()
    if response.status_code == 201:
        credential = body["credential"]
        return Answer(
            kind,
            started,
            elapsed,
            201,
            request_id=body["request_id"],
            secret=credential["token"],
            accessor=credential.get("accessor", ""),
        )
    code = body.get("error", {}).get("code", "") if isinstance(body, dict) else ""
    leaked = "credential" in body or SECRET.search(response.text) is not None
    return Answer(kind, started, elapsed, response.status_code, code, leaked=leaked)


@dataclass
class Rig:
    """A broker reaching its store and Vault through proxies, and clients posting to it."""

    served: Served
    store: FaultyProxy
    vault: FaultyProxy
    bao: Bao
    answers: Answers = field(default_factory=Answers)
    stop: threading.Event = field(default_factory=threading.Event)
    callers: list[threading.Thread] = field(default_factory=list)

    def load(self) -> None:
        self.served.token(CI)  # a CLI call: made once, before the clock starts
        for kind in BODIES:
            for _ in range(CALLERS_PER_KIND):
                thread = threading.Thread(target=self._call, args=(kind,), daemon=True)
                thread.start()
                self.callers.append(thread)

    def _call(self, kind: str) -> None:
        with httpx.Client(
            base_url=self.served.url,
            headers={"Authorization": f"Bearer {self.served.token(CI)}"},
            timeout=BUDGET + 5,
        ) as client:
            while not self.stop.is_set():
                self.answers.post(client, kind)

    def halt(self) -> None:
        self.stop.set()
        for thread in self.callers:
            thread.join(timeout=BUDGET + 10)
        assert not any(thread.is_alive() for thread in self.callers), "a client hangs"

    def wait_for_201s_since(self, since: float) -> None:
        """Until both kinds got a 201 for a request sent after ``since``."""
        deadline = time.monotonic() + HEAL_WITHIN
        while time.monotonic() < deadline:
            tally = self.answers.tally(since)
            if all(tally[kind][201] for kind in BODIES):
                return
            time.sleep(0.1)
        raise AssertionError(f"no 201 of each kind {HEAL_WITHIN} s after healing: {tally}")


@pytest.fixture
def rig(tmp_path: Path, redis_url: str, own_bao: Bao) -> Iterator[Rig]:
    valkey_port = urlsplit(redis_url).port
    vault_port = urlsplit(own_bao.addr).port
    assert valkey_port and vault_port
    with (
        FaultyProxy("127.0.0.1", valkey_port) as store,
        FaultyProxy("127.0.0.1", vault_port) as vault,
    ):
        through = redis_url.replace(f"127.0.0.1:{valkey_port}", store.address)
        env = {
            **SETTINGS,
            "GRANTLINE_VAULT_ADDR": f"http://{vault.address}",
            "GRANTLINE_VAULT_TOKEN": own_bao.broker_token,
        }
        served = serve(tmp_path / "home", redis_url=through, extra_env=env)
        # What `grantline dev token` prints, without a CLI start-up (1 s) for each.
        issuer = DevIssuer(served.home / "keys" / "dev-issuer.pem", audience="grantline")
        for subject in (CI, OPERATOR, AUDITOR):
            served.tokens[subject] = issuer.mint(subject)
        started = Rig(served, store, vault, own_bao)
        try:
            yield started
        finally:
            started.stop.set()
            store.heal()
            vault.heal()
            served.stop()


# -- faults: each runs on a proxy until a deadline -------------------------------------------

Fault = Callable[[FaultyProxy, float], None]


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def latency(seconds: float) -> Fault:
    def run(proxy: FaultyProxy, until: float) -> None:
        proxy.latency(seconds)
        _sleep_until(until)

    return run


def resets(proxy: FaultyProxy, until: float) -> None:
    while time.monotonic() < until:
        proxy.reset_all()
        time.sleep(0.1)


def blackhole(proxy: FaultyProxy, until: float) -> None:
    proxy.blackhole()
    _sleep_until(until)


def refused(proxy: FaultyProxy, until: float) -> None:
    """A peer gone: established connections reset, new ones reset at once."""
    proxy.drop_new()
    proxy.reset_all()
    _sleep_until(until)


def cut_replies(proxy: FaultyProxy, until: float) -> None:
    """Every reply lost after its request arrived: retries are lost too."""
    proxy.cut_replies(after_bytes=0)
    _sleep_until(until)


def cut_one_reply_at_a_time(proxy: FaultyProxy, until: float) -> None:
    """One reply lost every 200 ms: a retry usually gets through (the idempotency case)."""
    while time.monotonic() < until:
        proxy.cut_replies(after_bytes=0, times=1)
        time.sleep(0.2)


def inject(rig: Rig, proxy: FaultyProxy, fault: Fault) -> tuple[float, float]:
    """Load, then the fault for FAULT_SECONDS, then heal and wait for 201s again. The times
    the fault began and ended."""
    rig.load()
    time.sleep(0.5)
    began = time.monotonic()
    fault(proxy, began + FAULT_SECONDS)
    proxy.heal()
    healed = time.monotonic()
    rig.wait_for_201s_since(healed)
    time.sleep(0.3)
    rig.halt()
    return began, healed


# -- what must hold after every run ----------------------------------------------------------


class InternalErrorAnsweredError(AssertionError):
    """The broker answered 500: a failure it did not turn into a 503."""


def assert_answers_bounded(answers: Answers) -> None:
    statuses = Counter(a.status for a in answers.all)
    assert 0 not in statuses, "a client got no answer within its timeout"
    assert not any(a.leaked for a in answers.all), "a refusal carried a credential"
    slowest = max(a.elapsed for a in answers.all)
    assert slowest < BUDGET, f"an answer took {slowest:.1f} s"
    if statuses[500]:
        # uvicorn closes the connection of a request that raised: -1s follow 500s.
        raise InternalErrorAnsweredError(f"{statuses[500]} answers were 500: {statuses}")
    assert -1 not in statuses, "the broker dropped a client's connection"
    assert set(statuses) <= {201, 503} | set(range(400, 500)), statuses
    codes = Counter(a.code for a in answers.all if a.status == 503)
    assert set(codes) <= ANSWERED_CODES, codes


def reconcile(served: Served) -> dict[str, Any]:
    with served.client(OPERATOR) as client:
        response = client.post("/v1/reconcile", timeout=60)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    assert report["errors"] == [], report
    return report


def assert_nothing_lost(rig: Rig, out: Path) -> list[dict[str, Any]]:
    """Every credential handed out matches one ``issued`` record; the export verifies."""
    lines = export(rig.served, out)
    records = [json.loads(line) for line in lines if line.startswith(b"{")]
    chained = [r for r in records if "seq" in r]
    assert [r["seq"] for r in chained] == list(range(1, len(chained) + 1)), "a gap or a fork"
    issued = [r for r in chained if r["event"] == "issued"]
    by_request = Counter(r["request_id"] for r in issued)
    assert not [rid for rid, n in by_request.items() if n > 1], "an issued record twice"
    by_fingerprint = {r["data"]["fingerprint"]: r["request_id"] for r in issued}
    assert len(by_fingerprint) == len(issued), "two issued records for one credential"
    handed = rig.answers.issued()
    for answer in handed:
        fingerprint = "sha256:" + hashlib.sha256(answer.secret.encode()).hexdigest()
        assert by_fingerprint.get(fingerprint) == answer.request_id, (
            f"credential of {answer.request_id} handed out without its issued record"
        )
    assert len({a.request_id for a in handed}) == len(handed)
    code, output = verify(rig.served, out)
    assert code == 0, output
    return chained


def grant_tokens_alive(bao: Bao) -> dict[str, str]:
    """Accessor to request id of every live token of the broker's role naming a request."""
    root = bao.root()
    alive: dict[str, str] = {}
    for accessor in root.auth.token.list_accessors()["data"]["keys"]:
        try:
            data = root.auth.token.lookup_accessor(accessor)["data"]
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
            # Revoked between the list and the lookup, or a dangling entry whose token is gone.
            continue
        meta = data.get("meta") or {}
        if data.get("role") == "grantline" and "grantline_request_id" in meta:
            alive[accessor] = meta["grantline_request_id"]
    return alive


def assert_no_orphan_in_vault(rig: Rig) -> None:
    """Every live grant token is one a client holds; every token a client holds is live."""
    alive = grant_tokens_alive(rig.bao)
    handed = {a.accessor: a.request_id for a in rig.answers.issued("vault_token")}
    orphans = {acc: rid for acc, rid in alive.items() if handed.get(acc) != rid}
    assert not orphans, f"live in OpenBao, never handed to a client: {orphans}"
    dead = sorted(set(handed) - set(alive))
    assert not dead, f"handed to a client and already dead in OpenBao: {dead}"


def check_run(rig: Rig, tmp_path: Path) -> dict[str, Any]:
    """The properties of every test (module docstring); the figures of the run. A 500 is
    reported last, once the records and OpenBao have been checked."""
    report = reconcile(rig.served)
    chained = assert_nothing_lost(rig, tmp_path / "export.jsonl")
    assert_no_orphan_in_vault(rig)
    figures = {
        "answers": {k: dict(v) for k, v in rig.answers.tally().items()},
        "codes": dict(Counter(a.code for a in rig.answers.all if a.code)),
        "slowest": round(max(a.elapsed for a in rig.answers.all), 2),
        "events": dict(Counter(r["event"] for r in chained)),
        "reconciled": report["findings"],
        "store_proxy": vars(rig.store.stats),
        "vault_proxy": vars(rig.vault.stats),
    }
    print(json.dumps(figures))
    assert_answers_bounded(rig.answers)
    log = rig.served.log.read_text()
    assert not [line for line in log.splitlines() if any(m in line for m in UNHANDLED)]
    return figures


def _failed_during(rig: Rig, kind: str, began: float, healed: float) -> int:
    return sum(
        1
        for a in rig.answers.all
        if a.kind == kind and a.status == 503 and began <= a.started + a.elapsed <= healed + 1
    )


# -- the store -------------------------------------------------------------------------------


def test_store_latency_below_the_timeout_slows_requests_but_fails_none(
    rig: Rig, tmp_path: Path
) -> None:
    """Row 2, slow but in time: 0.1 s each way on every store chunk (0.2 s a round trip,
    under the 0.5 s socket timeout): every answer is a 201."""
    inject(rig, rig.store, latency(0.1))
    figures = check_run(rig, tmp_path)
    assert set(Counter(a.status for a in rig.answers.all)) == {201}, figures


STORE_FAULTS = {
    # Row 2: a round trip of 0.8 s, over the 0.5 s timeout: every call times out.
    "latency_above_timeout": latency(0.4),
    # Rows 1 and 12: connections reset under load, every 100 ms.
    "resets": resets,
    # Row 2: a hung store, what SIGSTOP does seen from the network.
    "blackhole": blackhole,
    # Row 1: the store gone (connections reset, reconnects refused).
    "refused": refused,
    # Row 4: every reply lost after the store applied the command.
    "cut_replies": cut_replies,
}


@pytest.mark.parametrize(
    "fault",
    list(STORE_FAULTS),
)
def test_a_store_fault_fails_requests_with_503_in_time_and_loses_nothing(
    rig: Rig, tmp_path: Path, fault: str
) -> None:
    """Rows 1, 2, 4, 12 through the network: while the store's link is broken both kinds
    get 503 ``store_unavailable`` within the budget; an ``issued`` record the store applied
    after its caller gave up is never a credential a client holds (a Vault token so
    recorded was revoked by the broker, which the reconciler then records); after
    healing 201s resume, and the module's properties hold."""
    began, healed = inject(rig, rig.store, STORE_FAULTS[fault])
    figures = check_run(rig, tmp_path)
    if fault != "resets":
        # A reset connection is opened again at once and the call retried, so resets alone
        # need fail nothing; every other fault keeps the store out of reach for a while.
        assert _failed_during(rig, "jwt", began, healed) > 0, figures


def test_a_store_connection_reset_while_idle_is_retried_or_a_503_never_a_500(
    rig: Rig, tmp_path: Path
) -> None:
    """Rows 1 and 12, deterministic: the store resets the broker's idle pooled connections
    (a store restart, a failover, a firewall's idle timeout) between two requests. The next
    request must reconnect (redis-py retries connection errors) or answer 503; it must never
    be a 500."""
    for kind in [*BODIES, *BODIES]:
        with rig.served.client(CI) as client:  # a 500 would close the connection
            assert rig.answers.post(client, kind).status == 201
            assert rig.store.reset_all() > 0
            time.sleep(0.3)  # the event loop has seen the RST and closed the transport
            rig.answers.post(client, kind)
    check_run(rig, tmp_path)


def test_store_replies_lost_one_at_a_time_are_retried_without_a_duplicate(
    rig: Rig, tmp_path: Path
) -> None:
    """Row 4: one store reply in five lost after the command was applied; the client's retry
    of an append finds its batch already written and appends nothing twice (no duplicate
    ``issued``, no fork); most requests still succeed."""
    inject(rig, rig.store, cut_one_reply_at_a_time)
    figures = check_run(rig, tmp_path)
    assert rig.store.stats.cut > 0, figures
    assert len(rig.answers.issued()) > rig.store.stats.cut, figures


# -- Vault -----------------------------------------------------------------------------------


def test_vault_latency_below_the_timeout_slows_vault_grants_but_fails_none(
    rig: Rig, tmp_path: Path
) -> None:
    """Row 13, slow but in time: 0.2 s each way on every OpenBao chunk (0.4 s a round trip,
    under the 1 s timeout): every answer is a 201."""
    inject(rig, rig.vault, latency(0.2))
    figures = check_run(rig, tmp_path)
    assert set(Counter(a.status for a in rig.answers.all)) == {201}, figures


VAULT_FAULTS = {
    # Row 13, slow: 1.4 s a round trip against a 1 s timeout; OpenBao creates the token
    # after the broker gave up on it.
    "latency_above_timeout": latency(0.7),
    "resets": resets,
    # Row 13, hung: nothing comes back; the held mints reach OpenBao once healed.
    "blackhole": blackhole,
    # Row 13, down.
    "refused": refused,
    # Row 13, no blind retry: the token is created, its reply is lost.
    "cut_replies": cut_replies,
    "cut_one_reply_at_a_time": cut_one_reply_at_a_time,
}


@pytest.mark.parametrize("fault", list(VAULT_FAULTS))
def test_a_vault_fault_fails_vault_grants_with_503_and_leaves_no_orphan_token(
    rig: Rig, tmp_path: Path, fault: str
) -> None:
    """Row 13 through the network: while OpenBao's link is broken ``vault_token`` requests
    get 503 ``vault_unavailable``/``vault_timeout`` within the budget and JWT requests keep
    getting 201s; a token OpenBao created for a request whose answer was lost is never
    retried blindly: it is found by its request id and revoked by the reconciler, so after
    one pass no broker token lives in OpenBao that no client holds."""
    began, healed = inject(rig, rig.vault, VAULT_FAULTS[fault])
    figures = check_run(rig, tmp_path)
    assert _failed_during(rig, "vault_token", began, healed) > 0, figures
    assert rig.answers.tally()["jwt"].keys() == {201}, figures
