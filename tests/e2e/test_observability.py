"""Observability end to end: /metrics after a scripted run, JSON logs of a served broker,
and the span tree of a grant (in process, with the SDK's in-memory exporter)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.conftest import POLICIES, Served, serve

from grantline.api.app import create_app
from grantline.config import Settings, dev_issuer
from grantline.observe.tracing import Tracing

pytestmark = pytest.mark.e2e

CI, ALICE, AUDITOR = "spiffe://example.org/ci-runner", "user:alice", "user:auditor"
DB_READ = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 600}
REPORT_WRITE = {"target": "s3://reports", "role": "report-write", "ttl_seconds": 600}
BREAK_GLASS = {
    "target": "postgres://orders-db",
    "role": "db-admin",
    "ttl_seconds": 600,
    "break_glass": True,
    "justification": "INC-1: orders table locked",
}
Sample = tuple[str, frozenset[tuple[str, str]]]
_SAMPLE = re.compile(r"^([a-z_:]+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    broker = serve(tmp_path_factory.mktemp("observed"), extra_env={"GRANTLINE_LOG_FORMAT": "json"})
    yield broker
    broker.stop()


def scrape(served: Served) -> dict[Sample, float]:
    samples: dict[Sample, float] = {}
    for line in httpx.get(f"{served.url}/metrics").text.splitlines():
        if line.startswith("#") or not line:
            continue
        found = _SAMPLE.match(line)
        assert found, line
        name, labels, value = found.groups()
        samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return samples


def sample(name: str, **labels: str) -> Sample:
    return (name, frozenset(labels.items()))


def changes(
    before: dict[Sample, float], after: dict[Sample, float], name: str
) -> dict[Sample, float]:
    """The samples of ``name`` that moved between two scrapes, by how much."""
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == name and value != before.get(key, 0.0)
    }


def ask(served: Served, subject: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    with served.client(subject) as client:
        return client.post("/v1/access-requests", json=body, headers=headers)


def test_metrics_count_a_scripted_run_exactly(served: Served) -> None:
    before = scrape(served)

    for _ in range(3):
        assert ask(served, CI, DB_READ).status_code == 201
    assert ask(served, CI, {**DB_READ, "ttl_seconds": 7200}).status_code == 403
    assert (
        ask(served, CI, {**DB_READ, "role": "deployer", "target": "k8s://prod"}).status_code == 403
    )
    assert ask(served, ALICE, REPORT_WRITE).status_code == 202
    vault = ask(served, CI, {**DB_READ, "role": "vault-kv-read", "credential_type": "vault_token"})
    assert vault.status_code == 422
    assert vault.json()["error"]["code"] == "credential_type_unavailable"
    after = scrape(served)

    requests = "grantline_access_requests_total"
    assert changes(before, after, requests) == {
        sample(requests, outcome="issued", rule="rbac", reason="allowed"): 3,
        sample(requests, outcome="denied", rule="deny", reason="ttl"): 1,
        sample(requests, outcome="denied", rule="deny", reason="not_bound"): 1,
        sample(
            requests, outcome="pending_approval", rule="approval", reason="approval_required"
        ): 1,
        sample(requests, outcome="failed", rule="none", reason="credential_type_unavailable"): 1,
    }
    # Six decisions (the failed request never reached the policy); the pending request's
    # answer lists who may approve it: one approval query per member of `security`.
    security = json.loads((POLICIES / "data.json").read_text())["grantline"]["groups"]["security"]
    policy = "grantline_policy_evaluation_duration_seconds"
    assert_histogram(before, after, policy, {"entrypoint": "decision"}, 6)
    assert_histogram(before, after, policy, {"entrypoint": "approval"}, len(security))
    issuance = "grantline_issuance_duration_seconds"
    assert_histogram(before, after, issuance, {"credential_type": "jwt", "outcome": "ok"}, 3)
    # One append per answered request: 3 grants, 2 denials, 1 request put on hold.
    append = "grantline_log_append_duration_seconds"
    assert_histogram(before, after, append, {"outcome": "ok"}, 6)
    assert changes(before, after, "grantline_log_records_appended_total") == {
        sample("grantline_log_records_appended_total"): 3 * 4 + 2 * 3 + 2
    }
    responses = "grantline_http_responses_total"
    route = {"method": "POST", "route": "/v1/access-requests"}
    assert {
        dict(key[1])["status"]: delta
        for key, delta in changes(before, after, responses).items()
        if dict(key[1]).items() >= route.items()
    } == {"201": 3, "403": 2, "202": 1, "422": 1}


def assert_histogram(
    before: dict[Sample, float],
    after: dict[Sample, float],
    name: str,
    labels: dict[str, str],
    count: int,
) -> None:
    for suffix, key in (("_count", labels), ("_bucket", {**labels, "le": "+Inf"})):
        delta = after[sample(name + suffix, **key)] - before.get(sample(name + suffix, **key), 0)
        assert delta == count, (name + suffix, labels)
    assert after[sample(name + "_sum", **labels)] > before.get(sample(name + "_sum", **labels), 0)


def test_fifty_subjects_make_no_subject_label(served: Served) -> None:
    issuer = dev_issuer(Settings(home=served.home))
    before = scrape(served)
    for i in range(50):
        token = issuer.mint(f"spiffe://example.org/ns/batch/worker-{i}")
        response = httpx.post(
            f"{served.url}/v1/access-requests",
            json={"target": "s3://reports", "role": "report-read", "ttl_seconds": 60},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
        denied = httpx.post(
            f"{served.url}/v1/access-requests",
            json={"target": "s3://reports", "role": f"role-{i}", "ttl_seconds": 60},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert denied.status_code == 403
    after = scrape(served)

    requests = "grantline_access_requests_total"
    assert changes(before, after, requests) == {
        sample(requests, outcome="issued", rule="rbac", reason="allowed"): 50,
        sample(requests, outcome="denied", rule="deny", reason="unknown_role"): 50,
    }
    text = httpx.get(f"{served.url}/metrics").text
    assert "worker-" not in text
    assert "role-" not in text
    assert "spiffe://" not in text
    assert len(after) - len(before) <= 1  # at most the one new series above


def test_json_logs_carry_request_ids_and_no_secret(served: Served) -> None:
    granted = ask(served, CI, DB_READ, **{"X-Request-Id": "obs-grant-1"})
    glass = ask(served, ALICE, BREAK_GLASS, **{"X-Request-Id": "obs-glass-1"})
    assert granted.status_code == glass.status_code == 201, glass.text
    assert granted.headers["x-request-id"] == "obs-grant-1"
    caller = served.token(CI)
    # A token where the server logs it: in the query string of uvicorn's access line.
    leaked = httpx.get(f"{served.url}/v1/records", params={"subject": caller})
    assert leaked.status_code == 401
    tracer = leaked.headers["x-request-id"]

    lines = wait_for_log(served, tracer)
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)

    access = {e["correlation_id"]: e for e in entries if e["logger"] == "uvicorn.access"}
    assert all(e.get("correlation_id") for e in entries if e["logger"] == "uvicorn.access")
    assert access["obs-grant-1"]["request_id"] == granted.json()["request_id"]
    assert access["obs-grant-1"]["status"] == 201
    # Logged inside the broker, after it minted the request id.
    [alert] = [e for e in entries if '"event": "break_glass"' in e["message"]]
    assert alert["correlation_id"] == "obs-glass-1"
    assert alert["request_id"] == glass.json()["request_id"]
    assert access[tracer]["path"] == "/v1/records?subject=[REDACTED]"

    text = "\n".join(lines)
    for token in (caller, served.token(ALICE), *served.tokens.values()):
        assert token not in text
    for response in (granted, glass):
        credential = response.json()["credential"]["token"]
        assert credential not in text
        assert credential.split(".")[2] not in text


def wait_for_log(served: Served, correlation_id: str) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        lines = served.log.read_text().splitlines()
        if any(correlation_id in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


async def test_a_grant_is_a_request_span_with_policy_issuance_and_log_children(
    tmp_path: Path, redis_url: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(
        home=tmp_path / "home",
        redis_url=redis_url,
        policies=POLICIES,
        reconcile_seconds=0,
        checkpoint_seconds=0,
        vault_dev=False,
    )
    caller = dev_issuer(settings).mint(CI)

    app = create_app(settings, tracing=Tracing(provider))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://grantline") as client,
    ):
        exporter.clear()  # start-up work (the policy's activation) is not a request
        response = await client.post(
            "/v1/access-requests", json=DB_READ, headers={"Authorization": f"Bearer {caller}"}
        )
    assert response.status_code == 201, response.text

    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "POST /v1/access-requests"
    assert (
        attributes(server).items()
        >= {
            "http.request.method": "POST",
            "http.route": "/v1/access-requests",
            "http.response.status_code": 201,
            "grantline.request_id": response.json()["request_id"],
            "grantline.outcome": "issued",
            "grantline.rule": "rbac",
            "grantline.correlation_id": response.headers["x-request-id"],
        }.items()
    )
    children = {s.name: s for s in spans if s is not server}
    assert sorted(children) == [
        "grantline.credential.mint",
        "grantline.log.append",
        "grantline.policy.evaluate",
    ]
    for child in children.values():
        assert child.parent is not None
        assert child.parent.span_id == server.context.span_id
        assert child.context.trace_id == server.context.trace_id
    assert (
        attributes(children["grantline.policy.evaluate"]).items()
        >= {
            "grantline.policy.entrypoint": "decision",
            "grantline.policy.allow": True,
            "grantline.policy.rule": "rbac",
        }.items()
    )
    assert attributes(children["grantline.credential.mint"])["grantline.credential_type"] == "jwt"
    assert attributes(children["grantline.log.append"])["grantline.log.records"] == 4
    # Nothing exported holds the caller's token or the credential.
    exported = json.dumps([attributes(s) for s in spans] + [s.name for s in spans])
    assert caller not in exported
    assert response.json()["credential"]["token"] not in exported


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})
