"""`grantline audit report` end to end: a served broker driven through every flow by threads,
a few thousand requests. The test counts what it sent and what the broker answered, and the
report's JSON must show exactly those numbers; the page must be self-contained, escaped and
linked; a tampered export must give the red banner and exit 2.

The shipped policy (policies/data.json) decides: caps per role, report-write needing one of
security, db-admin one of security and two of platform-oncall (dan is refused: he is bound
to deployer), break-glass on db-admin under a 900 s cap, SoD between deployer and
prod-approver.
"""

from __future__ import annotations

import json
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import POLICIES, Served, cli, export, serve

from grantline.identity.dev_issuer import DevIssuer

pytestmark = pytest.mark.e2e

CI, RELEASE, ALICE, DAN = (
    "spiffe://example.org/ci-runner",
    "spiffe://example.org/release-bot",
    "user:alice",
    "user:dan",
)
SAM, SOFIA, BOB, CAROL = "user:sam", "user:sofia", "user:bob", "user:carol"
REPORT_BOT, PLANNER = (
    "spiffe://example.org/agents/report-bot",
    "spiffe://example.org/agents/planner",
)
AUDITOR, OPERATOR = "user:auditor", "user:operator"
BATCH = [f"spiffe://example.org/ns/batch/job-{n}" for n in range(100)]
DB, S3, K8S = "postgres://orders-db", "s3://reports", "k8s://prod"
HOSTILE_PURPOSE = "<script>alert(1)</script>"
HOSTILE_ROLE = "<img src=x onerror=alert(2)>"
HOSTILE_REASON = "<b>rotated</b> & done"
WINDOW = 12  # seconds a request waits for approvers
REVIEW = 3  # seconds before a break-glass review is due
CAPS = json.loads((POLICIES / "data.json").read_text())["grantline"]["roles"]


def cap_of(role: str, break_glass: bool) -> int | None:
    """The cap the shipped data gives a role (its break-glass cap for break-glass, when the
    role has one), read here from policies/data.json."""
    config = CAPS.get(role)
    if config is None:
        return None
    block = config.get("break_glass") if break_glass else None
    return int((block or config)["max_ttl_seconds"])


@dataclass(frozen=True)
class Sent:
    """One access request as the test sent it."""

    subject: str  # whom the credential is for
    caller: str  # who asked: the subject, or an agent acting for it
    role: str
    target: str
    ttl: int
    break_glass: bool
    key_bound: bool


@dataclass
class Tally:
    """What the test did and what the broker answered, counted as it happened."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    grants: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # each once per denied request
    intents: Counter[str] = field(default_factory=Counter)  # denials, by what was meant
    ttl: defaultdict[tuple[str, bool], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    counts: Counter[str] = field(default_factory=Counter)
    given: Counter[str] = field(default_factory=Counter)
    rejected_by: Counter[str] = field(default_factory=Counter)
    refused_by: Counter[str] = field(default_factory=Counter)
    revoked_by: Counter[str] = field(default_factory=Counter)
    revoke_reasons: Counter[str] = field(default_factory=Counter)
    round_trips: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    granted: dict[str, Sent] = field(default_factory=dict)
    ids: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, name: str, by: int = 1) -> None:
        with self.lock:
            self.counts[name] += by


class Driver:
    """Sends requests as many identities at once (one HTTP client each) and tallies them."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.issuer = DevIssuer(served.home / "keys" / "dev-issuer.pem")
        self.tally = Tally()
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        key = Ed25519PrivateKey.generate().public_key()
        self.jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key))

    def client(self, subject: str) -> httpx.Client:
        with self._lock:
            if subject not in self._clients:
                self._clients[subject] = httpx.Client(
                    base_url=self.served.url,
                    headers={"Authorization": f"Bearer {self.issuer.mint(subject)}"},
                    timeout=30,
                )
            return self._clients[subject]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def ask(
        self, subject: str, role: str, target: str, ttl: int, intent: str, **extra: Any
    ) -> dict[str, Any]:
        """One access request; ``intent`` is what the test expects: ``grant``, ``approval``,
        or the kind of denial it provokes."""
        caller = extra.pop("caller", subject)
        body = {"target": target, "role": role, "ttl_seconds": ttl, "purpose": "e2e", **extra}
        started = time.perf_counter()
        response = self.client(caller).post("/v1/access-requests", json=body)
        elapsed = time.perf_counter() - started
        expected = {"grant": 201, "approval": 202}.get(intent, 403)
        assert response.status_code == expected, (intent, body, response.text)
        answer: dict[str, Any] = response.json()
        bound, glass = "public_key" in body, bool(body.get("break_glass"))
        self._count(answer, Sent(subject, caller, role, target, ttl, glass, bound), intent, elapsed)
        return answer

    def _count(self, answer: dict[str, Any], sent: Sent, intent: str, elapsed: float) -> None:
        cap = cap_of(sent.role, sent.break_glass)
        row = (sent.role, sent.break_glass)
        with self.tally.lock:
            tally = self.tally
            tally.requests += 1
            tally.ttl[row]["requests"] += 1
            tally.ttl[row]["above"] += cap is not None and sent.ttl > cap
            tally.ids[intent].append(answer["request_id"])
            if intent == "grant":
                kind = "break_glass" if sent.break_glass else "policy"
                tally.grants[(sent.role, sent.target, sent.subject, kind)] += 1
                tally.granted[answer["request_id"]] = sent
                tally.round_trips[kind].append(elapsed)
                tally.counts["agent_grants"] += sent.caller != sent.subject
                tally.counts["key_bound"] += sent.key_bound
            elif intent == "approval":
                tally.counts["needed"] += 1
            else:
                tally.intents[intent] += 1
                tally.reasons.update(set(answer["decision"]["reasons"]))

    def act(self, approver: str, request_id: str, action: str, reason: str) -> httpx.Response:
        path = f"/v1/access-requests/{request_id}/{action}"
        return self.client(approver).post(path, json={"reason": reason})


# -- the flows, each a job for the thread pool --------------------------------------------


def approved_flow(driver: Driver, role: str, approvers: list[str], refused: str = "") -> None:
    """Ask, then approve until the quorum issues; how long that took, end to end."""
    started = time.perf_counter()
    target = S3 if role == "report-write" else DB
    request_id = driver.ask(ALICE, role, target, 900, "approval")["request_id"]
    tally = driver.tally
    if refused:
        response = driver.act(refused, request_id, "approve", "I am on call")
        assert response.status_code == 403, response.text
        with tally.lock:
            tally.refused_by[refused] += 1
    for approver in approvers:
        response = driver.act(approver, request_id, "approve", "change CHG-9 reviewed")
        assert response.status_code == 200, response.text
        with tally.lock:
            tally.given[approver] += 1
    assert response.json()["status"] == "issued"
    with tally.lock:
        tally.grants[(role, target, ALICE, "approvers")] += 1
        tally.round_trips["approvers"].append(time.perf_counter() - started)
        tally.ids["quorum"].append(request_id)


def rejected_flow(driver: Driver, approver: str) -> None:
    request_id = driver.ask(ALICE, "report-write", S3, 900, "approval")["request_id"]
    response = driver.act(approver, request_id, "reject", "no change ticket")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    with driver.tally.lock:
        driver.tally.rejected_by[approver] += 1


def break_glass_flow(driver: Driver, n: int) -> None:
    """A break-glass grant; every other one reviewed at once by someone else."""
    glass = {"break_glass": True, "justification": "INC-4411: checkout down"}
    request_id = driver.ask(ALICE, "db-admin", DB, 600 + n, "grant", **glass)["request_id"]
    if n % 2:
        return
    reviewer = SAM if n % 4 else SOFIA
    response = driver.act(reviewer, request_id, "review", "PIR-88: matched the incident")
    assert response.status_code == 200, response.text
    driver.tally.add("reviewed")


Job = Callable[[], object]


def repeat(count: int, job: Callable[[int], object]) -> list[Job]:
    return [partial(job, n) for n in range(count)]


def plain_jobs(driver: Driver, rng: random.Random) -> list[Job]:
    """Grants and denials of every kind the policy gives, by many identities, shuffled."""
    ask = driver.ask
    ttls = [rng.randint(300, 3600) for _ in range(400)]
    jobs = [
        *repeat(1500, lambda n: ask(BATCH[n % 100], "report-read", S3, 300 + n % 300, "grant")),
        *repeat(100, lambda n: ask(BATCH[n], "report-read", S3, 601 + n, "ttl_cap")),
        *repeat(50, lambda n: ask(BATCH[n], "db-read", DB, 300, "not_bound")),
        *repeat(250, lambda n: ask(CI, "db-read", DB, ttls[n], "grant")),
        *repeat(30, lambda n: ask(CI, "db-read", DB, 600, "grant", public_key=driver.jwk)),
        *repeat(50, lambda n: ask(CI, "db-read", DB, 1, "grant")),  # expired before the report
        *repeat(150, lambda n: ask(CI, "db-write", DB, 300 + 4 * n, "grant")),
        *repeat(150, lambda n: ask(CI, "db-write", DB, 901 + 13 * n, "ttl_cap")),
        *repeat(100, lambda n: ask(CI, "db-read", DB, 3602 + 37 * n, "ttl_cap")),
        *repeat(
            90,
            lambda n: ask(CI, ["superuser", "root", HOSTILE_ROLE][n % 3], DB, 300, "unknown_role"),
        ),
        *repeat(60, lambda n: ask(ALICE, "db-read", DB, 600, "grant")),
        *repeat(60, lambda n: ask(RELEASE, "deployer", K8S, 1200, "grant")),
        *repeat(100, lambda n: ask(RELEASE, "prod-approver", K8S, 600, "separation_of_duties")),
        *repeat(40, lambda n: ask(DAN, "deployer", K8S, 1200, "grant")),
        *agent_jobs(driver),
    ]
    rng.shuffle(jobs)
    return jobs


def agent_jobs(driver: Driver) -> list[Job]:
    """Agents acting for alice, proven by her token: allowed what she may, never a
    human-only role."""
    token = driver.issuer.mint(ALICE)
    agent = {"on_behalf_of": ALICE, "goal": "weekly order summary", "tool": "sql.query"}

    def as_agent(caller: str, role: str, intent: str) -> Callable[[int], object]:
        return lambda n: driver.ask(
            ALICE, role, DB, 300, intent, caller=caller, subject_token=token, agent=agent
        )

    return [
        *repeat(80, as_agent(REPORT_BOT, "db-read", "grant")),
        *repeat(20, as_agent(PLANNER, "db-read", "grant")),
        *repeat(20, as_agent(REPORT_BOT, "db-admin", "human_only")),
    ]


def approval_jobs(driver: Driver) -> list[Job]:
    security = [SAM, SOFIA]
    oncall = [SAM, BOB, CAROL]
    return [
        *repeat(60, lambda n: approved_flow(driver, "report-write", [security[n % 2]])),
        *repeat(20, lambda n: approved_flow(driver, "db-admin", oncall, DAN if n < 10 else "")),
        *repeat(30, lambda n: rejected_flow(driver, security[n % 2])),
    ]


def break_glass_jobs(driver: Driver) -> list[Job]:
    glass = {"break_glass": True, "justification": "INC-4411: checkout down"}
    return [
        *repeat(40, lambda n: break_glass_flow(driver, n)),
        *repeat(10, lambda n: driver.ask(ALICE, "db-admin", DB, 901 + n, "ttl_cap", **glass)),
        *repeat(10, lambda n: driver.ask(ALICE, "report-write", S3, 60, "break_glass", **glass)),
    ]


def run_all(jobs: list[Job]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def collect_some(driver: Driver) -> None:
    for request_id in driver.tally.ids["quorum"][:20]:
        response = driver.client(ALICE).get(f"/v1/access-requests/{request_id}/credential")
        assert response.status_code == 200, response.text
        driver.tally.add("collected")


def revoke_some(driver: Driver) -> None:
    """Revoke long-lived grants of the CI runner: 100 by itself, 30 by an auditor."""
    tally = driver.tally
    long_lived = [
        rid for rid, sent in tally.granted.items() if sent.subject == CI and sent.ttl >= 300
    ]
    for index, request_id in enumerate(long_lived[:130]):
        by, reason = (CI, "job done") if index < 100 else (AUDITOR, HOSTILE_REASON)
        response = driver.act(by, request_id, "revoke", reason)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "revoked"
        tally.revoked_by[by] += 1
        tally.revoke_reasons[reason] += 1


# -- the scenario, driven once for the module ------------------------------------------------


@dataclass
class Scenario:
    served: Served
    tally: Tally
    html: str
    data: dict[str, Any]
    code: int
    output: str
    mid: datetime
    work: Path
    env: dict[str, str]
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    work = tmp_path_factory.mktemp("report")
    settings = {
        "GRANTLINE_APPROVAL_WINDOW_SECONDS": str(WINDOW),
        "GRANTLINE_BREAK_GLASS_REVIEW_SECONDS": str(REVIEW),
        "GRANTLINE_RECONCILE_GRACE_SECONDS": "0",
    }
    served = serve(work / "home", extra_env=settings)
    driver = Driver(served)
    try:
        yield drive(driver, work)
    finally:
        driver.close()
        served.stop()


def drive(driver: Driver, work: Path) -> Scenario:
    started = time.monotonic()
    seconds: dict[str, float] = {}
    # Requests nobody approves: they expire while the rest runs.
    run_all(repeat(40, lambda n: driver.ask(ALICE, "report-write", S3, 600, "approval")))
    driver.tally.add("expired_pending", 40)
    expiry = time.monotonic() + WINDOW
    driver.ask(RELEASE, "deployer", K8S, 1800, "grant")  # held: prod-approver is now SoD
    driver.ask(CI, "db-read", DB, 10_001, "ttl_cap", purpose=HOSTILE_PURPOSE)
    run_all(plain_jobs(driver, random.Random(5)))  # noqa: S311 — test data, not secrets
    run_all(approval_jobs(driver))
    collect_some(driver)
    revoke_some(driver)
    mid = datetime.now(UTC)
    run_all(break_glass_jobs(driver))
    seconds["requests"] = time.monotonic() - started
    time.sleep(max(expiry - time.monotonic(), REVIEW) + 0.5)
    for _ in range(2):  # a pass handles at most 1,000 of each kind; the second finds nothing
        response = driver.client(OPERATOR).post("/v1/reconcile")
        assert response.status_code == 200, response.text
    env = {**driver.served.env, "GRANTLINE_TOKEN": driver.issuer.mint(AUDITOR)}
    out = work / "report.html"
    report_started = time.monotonic()
    result = cli(env, "audit", "report", "--out", str(out), "--top", "200", check=False)
    seconds["report"] = time.monotonic() - report_started
    seconds["total"] = time.monotonic() - started
    print(f"timings: {seconds}, {driver.tally.requests} requests")
    return Scenario(
        served=driver.served,
        tally=driver.tally,
        html=out.read_text(),
        data=json.loads((work / "report.json").read_text()),
        code=result.returncode,
        output=result.stdout + result.stderr,
        mid=mid,
        work=work,
        env=env,
        seconds=seconds,
    )


def counted(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {row["key"]: row["count"] for row in rows}


def grant_counts(tally: Tally, part: int) -> Counter[str]:
    """Grants by one part of (role, target, subject, kind)."""
    found: Counter[str] = Counter()
    for key, count in tally.grants.items():
        found[key[part]] += count
    return found


# -- the report's numbers are the test's own -------------------------------------------------


def test_the_report_verifies_what_it_counts(scenario: Scenario) -> None:
    assert scenario.code == 0, scenario.output
    assert scenario.tally.requests > 3000
    verification = scenario.data["verification"]
    assert verification["trusted"] is True
    # The unreviewed break-glass grants are policy findings: the records verify, and show a
    # control that was not honoured.
    assert verification["ok"] is False
    unreviewed = 40 - scenario.tally.counts["reviewed"]
    assert counted(verification["counts"]) == {"policy/break_glass_unreviewed": unreviewed}
    assert verification["records"] == verification["checkpoint_size"]


def test_grants_by_role_target_identity_and_type(scenario: Scenario) -> None:
    tally, grants = scenario.tally, scenario.data["figures"]["grants"]
    total = sum(tally.grants.values())
    assert grants["total"] == total
    assert counted(grants["by_role"]) == grant_counts(tally, 0)
    assert counted(grants["by_target"]) == grant_counts(tally, 1)
    assert counted(grants["by_subject"]) == grant_counts(tally, 2)
    assert grants["subjects"] == len(grant_counts(tally, 2))
    assert counted(grants["by_approval"]) == grant_counts(tally, 3)
    assert counted(grants["by_credential_type"]) == {"jwt": total}
    assert grants["agent"] == tally.counts["agent_grants"] == 100
    assert grants["key_bound"] == tally.counts["key_bound"] == 30
    assert grants["collected"] == tally.counts["collected"] == 20
    requests = scenario.data["figures"]["requests"]
    assert requests["total"] == tally.requests
    assert counted(requests["by_agent"]) == {REPORT_BOT: 100, PLANNER: 20}
    buckets = scenario.data["figures"]["timeline"]["buckets"]
    assert sum(b["grants"] for b in buckets) == total
    assert sum(b["denials"] for b in buckets) == sum(tally.intents.values())


def test_denials_by_reason_and_kind(scenario: Scenario) -> None:
    tally, denials = scenario.tally, scenario.data["figures"]["denials"]
    assert denials["total"] == sum(tally.intents.values())
    # Each denial here has one reason, of the kind the test provoked.
    assert counted(denials["by_kind"]) == tally.intents
    assert denials["distinct_reasons"] == len(tally.reasons)
    listed = counted(denials["by_reason"])
    assert len(listed) == min(200, len(tally.reasons))
    assert listed == {reason: tally.reasons[reason] for reason in listed}
    assert listed[f"unknown role {HOSTILE_ROLE}"] == 30
    for row in denials["by_reason"]:
        for example in row["examples"]:
            assert example["url"] == f"{scenario.served.url}/ui/requests/{example['request_id']}"


def test_approvals_quorum_rejection_expiry_and_approvers(scenario: Scenario) -> None:
    tally, approvals = scenario.tally, scenario.data["figures"]["approvals"]
    assert approvals["needed"] == tally.counts["needed"] == 150
    assert approvals["approved_by_quorum"] == len(tally.ids["quorum"]) == 80
    assert approvals["rejected"] == sum(tally.rejected_by.values()) == 30
    assert approvals["expired_pending"] == tally.counts["expired_pending"] == 40
    assert (approvals["pending"], approvals["denied_at_approval"]) == (0, 0)
    assert approvals["given"] == sum(tally.given.values())
    assert approvals["refusals"] == sum(tally.refused_by.values()) == 10
    people = set(tally.given) | set(tally.rejected_by) | set(tally.refused_by)
    assert {
        a["subject"]: (a["given"], a["rejected"], a["refused"]) for a in approvals["approvers"]
    } == {p: (tally.given[p], tally.rejected_by[p], tally.refused_by[p]) for p in people}
    (refusal,) = approvals["refusal_reasons"]
    assert refusal["count"] == 10
    assert "separation of duties" in refusal["key"]


def test_break_glass_grants_and_their_reviews(scenario: Scenario) -> None:
    reviewed = scenario.tally.counts["reviewed"]
    glass = scenario.data["figures"]["break_glass"]
    assert (glass["requested"], glass["granted"], glass["denied"]) == (60, 40, 20)
    assert glass["reviewed"] == reviewed == 20
    assert glass["review_overdue"] == glass["flagged_by_reconciler"] == 40 - reviewed
    assert glass["awaiting_review"] == 0
    assert Counter(item["review"] for item in glass["items"]) == {
        "reviewed": reviewed,
        "overdue": 40 - reviewed,
    }


def test_time_from_request_to_issuance(scenario: Scenario) -> None:
    tally, issue = scenario.tally, scenario.data["figures"]["time_to_issue"]
    by_kind = dict(zip(issue["kinds"], issue["distributions"], strict=True))
    for kind in ("policy", "approvers", "break_glass"):
        spread = by_kind[kind]
        assert spread["count"] == len(tally.round_trips[kind])
        assert spread["p50_ms"] <= spread["p90_ms"] <= spread["p99_ms"] <= spread["max_ms"]
        # The broker's own times fall inside the test's round trips.
        assert spread["max_ms"] <= max(tally.round_trips[kind]) * 1000 + 1
    assert sum(sum(b["counts"]) for b in issue["histogram"]) == sum(tally.grants.values())


def test_credentials_revoked_expired_and_reconciler_findings(scenario: Scenario) -> None:
    tally, figures = scenario.tally, scenario.data["figures"]
    credentials = figures["credentials"]
    assert credentials["revoked_before_expiry"] == sum(tally.revoked_by.values()) == 130
    assert credentials["revoked_after_expiry"] == 0
    assert counted(credentials["revoked_by"]) == tally.revoked_by
    assert counted(credentials["revoke_reasons"]) == tally.revoke_reasons
    assert counted(credentials["revoke_sources"]) == {"api": 130}
    short = sum(1 for sent in tally.granted.values() if sent.ttl == 1)
    assert credentials["expired"] == short == 50
    assert (credentials["failed"], credentials["revocation_failed"]) == (0, 0)
    reconciler = figures["reconciler"]
    unreviewed = 40 - tally.counts["reviewed"]
    assert counted(reconciler["by_finding"]) == {"break_glass_unreviewed": unreviewed}
    assert reconciler["expired_recorded"] == short
    assert {f["request_id"] for f in figures["findings"]} <= set(tally.ids["grant"])


def test_requested_ttl_against_the_cap(scenario: Scenario) -> None:
    rows = {(row["role"], row["break_glass"]): row for row in scenario.data["figures"]["ttl"]}
    assert set(rows) == set(scenario.tally.ttl)
    for (role, break_glass), sent in scenario.tally.ttl.items():
        row = rows[(role, break_glass)]
        assert row["cap"] == cap_of(role, break_glass), role
        assert (row["requests"], row["above_cap"]) == (sent["requests"], sent["above"]), role


def test_controls_cite_the_same_numbers(scenario: Scenario) -> None:
    tally, data = scenario.tally, scenario.data
    controls = {row["id"]: row for row in data["controls"]}
    grants = sum(tally.grants.values())
    assert controls["short-lived"]["evidence_total"] == grants + tally.intents["ttl_cap"]
    assert controls["separation-of-duties"]["evidence_total"] == 100
    assert controls["proof-of-possession"]["evidence_total"] == 30
    records = data["verification"]["records"]
    assert controls["tamper-evident-log"]["evidence_total"] == records
    assert {i["id"] for i in controls["short-lived"]["owasp_nhi"]} == {"NHI7:2025", "NHI1:2025"}
    for row in data["controls"]:
        assert row["nist_csf"] or row["owasp_nhi"], row["id"]
        assert row["maestro"], row["id"]


# -- the page ----------------------------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.sources: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if found.get("id"):
            self.ids.add(str(found["id"]))
        self.sources += [str(found[a]) for a in ("src", "srcset") if found.get(a)]


def test_the_page_is_one_escaped_self_contained_file(scenario: Scenario) -> None:
    html = scenario.html
    page = Page(html)
    assert page.tags["script"] == page.tags["link"] == page.tags["img"] == 0
    assert page.sources == []
    assert page.tags["svg"] == 3
    for svg in html.split("<svg")[1:]:
        # The page's own plots; fromstring raises on anything not well-formed.
        root = ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # noqa: S314
        assert root.get("role") == "img"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
    assert "controls-table" in page.ids
    assert "NHI7:2025" in html and "PR.AA-05" in html and "L7 Agent Ecosystem" in html
    # Attacker-influenced strings are shown, escaped.
    assert HOSTILE_PURPOSE not in html and HOSTILE_ROLE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;b&gt;rotated&lt;/b&gt; &amp; done" in html
    hostile_id = scenario.tally.ids["ttl_cap"][0]
    assert f"{scenario.served.url}/ui/requests/{hostile_id}" in page.links
    banner = html.split('id="verification"')[1].split(">")[0]
    assert "banner warn" in banner


# -- other periods, offline, and a tampered export ----------------------------------------------


def report_from(
    scenario: Scenario, export_file: Path, name: str, *extra: str
) -> tuple[int, dict[str, Any], str]:
    """``audit report --from`` an export, with the broker's keys and links to it."""
    jwks = scenario.work / "jwks.json"
    jwks.write_text(httpx.get(f"{scenario.served.url}/.well-known/jwks.json").text)
    out = scenario.work / f"{name}.html"
    args = ["--out", str(out), "--top", "200", "--from", str(export_file), "--jwks", str(jwks)]
    args += ["--url", scenario.served.url, *extra]
    result = cli(scenario.env, "audit", "report", *args, check=False)
    data = json.loads(out.with_suffix(".json").read_text())
    return result.returncode, data, out.read_text()


def test_offline_and_by_period(scenario: Scenario) -> None:
    export_file = scenario.work / "export.jsonl"
    export(scenario.served, export_file)
    code, offline, _ = report_from(scenario, export_file, "offline")
    assert code == 0
    assert offline["figures"] == scenario.data["figures"]
    mid = scenario.mid.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    code, after, _ = report_from(scenario, export_file, "after", "--since", mid)
    assert code == 0
    assert after["figures"]["requests"]["total"] == 60  # the break-glass phase
    assert after["figures"]["grants"]["total"] == after["figures"]["break_glass"]["granted"] == 40
    code, before, _ = report_from(scenario, export_file, "before", "--until", mid)
    assert before["figures"]["requests"]["total"] == scenario.tally.requests - 60
    assert before["figures"]["break_glass"]["requested"] == 0


def test_a_tampered_export_is_reported_under_a_red_banner_with_exit_2(scenario: Scenario) -> None:
    lines = export(scenario.served, scenario.work / "clean.jsonl")
    target = next(i for i, line in enumerate(lines) if b'"purpose":"e2e"' in line)
    lines[target] = lines[target].replace(b'"purpose":"e2e"', b'"purpose":"e3e"')
    tampered = scenario.work / "tampered.jsonl"
    tampered.write_bytes(b"\n".join(lines) + b"\n")
    code, data, html = report_from(scenario, tampered, "tampered")
    assert code == 2
    assert data["verification"]["trusted"] is False
    assert counted(data["verification"]["counts"])["integrity/bad_signature"] == 1
    assert 'class="banner fail"' in html
    assert "Verification FAILED" in html
    # Still a whole report: the figures are there, under the warning.
    assert data["figures"]["requests"]["total"] == scenario.tally.requests


def test_only_auditors_get_a_report(scenario: Scenario) -> None:
    env = {
        **scenario.env,
        "GRANTLINE_TOKEN": DevIssuer(scenario.served.home / "keys" / "dev-issuer.pem").mint(CI),
    }
    out = scenario.work / "not-an-auditor.html"
    result = cli(env, "audit", "report", "--out", str(out), check=False)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "auditors" in result.stderr
    assert not out.exists()
    assert not out.with_suffix(".json").exists()
