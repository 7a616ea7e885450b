"""Usage evidence through a served broker: what resource servers report and what introspection
shows lands on the grant's lineage as ``used`` records, one per window, and the export still
verifies."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import Served, cli, export, serve, verify

from grantline.client.pop import public_jwk_of

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
RESOURCE_SERVER = "spiffe://example.org/resource-server"
BODY = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 600}


@pytest.fixture
def broker(tmp_path: Path, redis_url: str) -> Iterator[Served]:
    served = serve(
        tmp_path / "home", redis_url=redis_url, extra_env={"GRANTLINE_USAGE_WINDOW_SECONDS": "1"}
    )
    yield served
    served.stop()


def grant(served: Served) -> tuple[str, str, str]:
    """A JWT grant: its request id, token and jti."""
    with served.client(CI) as client:
        response = client.post("/v1/access-requests", json=BODY)
    assert response.status_code == 201, response.text
    body = response.json()
    token = body["credential"]["token"]
    with served.client(RESOURCE_SERVER) as client:
        claims = client.post("/v1/introspect", json={"token": token}).json()
    return body["request_id"], token, claims["jti"]


def report(
    served: Served, uses: list[dict[str, Any]], batch_id: str | None = None
) -> httpx.Response:
    with served.client(RESOURCE_SERVER) as client:
        return client.post(
            "/v1/usage",
            json={"batch_id": batch_id or secrets.token_hex(12), "observations": uses},
        )


def used_records(
    served: Served, request_id: str, at_least: int, timeout: float = 15, reader: str = CI
) -> list[dict[str, Any]]:
    """The grant's ``used`` records, once there are ``at_least`` of them."""
    deadline = time.monotonic() + timeout
    with served.client(reader) as client:
        while True:
            lineage = client.get(f"/v1/access-requests/{request_id}/lineage").json()
            used = [r for r in lineage["records"] if r["event"] == "used"]
            if len(used) >= at_least or time.monotonic() > deadline:
                return [r["data"] for r in used]
            time.sleep(0.3)


def test_reported_uses_are_recorded_per_window_on_the_grants_lineage(
    broker: Served, tmp_path: Path
) -> None:
    request_id, _, jti = grant(broker)
    introspected = used_records(broker, request_id, 1)
    assert introspected[0]["operations"] == {"introspect": 1}
    uses = [
        {"jti": jti, "operation": "GET", "resource": "/orders/1", "outcome": "allowed"},
        {"jti": jti, "operation": "GET", "resource": "/orders/2", "outcome": "allowed"},
        {"jti": jti, "operation": "GET", "resource": "/orders/1", "outcome": "allowed"},
        {"jti": jti, "operation": "DELETE", "resource": "/orders/1", "outcome": "denied"},
    ]
    answer = report(broker, uses)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 4, "unknown": [], "duplicate": False}
    recorded = used_records(broker, request_id, 2)[1]
    assert recorded["count"] == 4
    assert recorded["operations"] == {"DELETE": 1, "GET": 3}
    assert recorded["outcomes"] == {"allowed": 3, "denied": 1}
    assert recorded["resources"] == ["/orders/1", "/orders/2"]
    assert recorded["reporters"] == [RESOURCE_SERVER]
    assert recorded["after_end"] == 0
    assert recorded["window"]["start"] <= recorded["first_use"] <= recorded["last_use"]
    assert recorded["last_use"] <= recorded["window"]["end"]
    lines = export(broker, tmp_path / "export.jsonl")
    code, output = verify(broker, tmp_path / "export.jsonl")
    assert code == 0, output
    assert "usage: 1 grants used (5 uses in 2 used records, 0 after their grant ended)" in output
    events = [json.loads(line)["event"] for line in lines if line.startswith(b"{")]
    assert events.count("used") == 2
    # The auditor's report counts them: one grant, used, 5 uses (the introspection too).
    env = {**broker.env, "GRANTLINE_TOKEN": broker.token("user:auditor")}
    out = tmp_path / "report.html"
    cli(env, "audit", "report", "--out", str(out))
    usage = json.loads(out.with_suffix(".json").read_text())["figures"]["usage"]
    assert (usage["issued"], usage["used"], usage["uses"], usage["after_end"]) == (1, 1, 5, 0)
    assert {c["key"]: c["count"] for c in usage["by_operation"]} == {
        "GET": 3,
        "DELETE": 1,
        "introspect": 1,
    }
    assert "Usage: were the grants used" in out.read_text()


def test_a_retried_batch_counts_once_and_unknown_tokens_are_named(broker: Served) -> None:
    request_id, _, jti = grant(broker)
    used_records(broker, request_id, 1)  # the introspection's window, recorded first
    use = {"jti": jti, "operation": "GET", "outcome": "allowed"}
    stranger = {"jti": "not-a-grantline-jti", "operation": "GET", "outcome": "allowed"}
    batch = secrets.token_hex(12)
    first = report(broker, [use, stranger, use], batch)
    again = report(broker, [use, stranger, use], batch)
    assert first.json() == {"accepted": 2, "unknown": [1], "duplicate": False}
    assert again.json() == {"accepted": 0, "unknown": [1], "duplicate": True}
    assert used_records(broker, request_id, 2)[1]["count"] == 2


def test_use_after_revocation_is_counted_as_after_the_end(broker: Served) -> None:
    request_id, token, jti = grant(broker)
    used_records(broker, request_id, 1)
    with broker.client(CI) as client:
        revoked = client.post(f"/v1/access-requests/{request_id}/revoke", json={"reason": "done"})
    assert revoked.status_code == 200, revoked.text
    with broker.client(RESOURCE_SERVER) as client:
        assert client.post("/v1/introspect", json={"token": token}).json() == {"active": False}
    report(broker, [{"jti": jti, "operation": "GET", "outcome": "denied"}])
    late = used_records(broker, request_id, 2)[1]
    assert late["after_end"] == 2
    assert late["outcomes"] == {"denied": 2}
    assert late["operations"] == {"GET": 1, "introspect": 1}
    with broker.client(CI) as client:
        lineage = client.get(f"/v1/access-requests/{request_id}/lineage").json()["records"]
    events = [r["event"] for r in lineage]
    assert events[-2:] == ["used", "reconciled"]
    assert lineage[-1]["data"]["finding"] == "used_after_end"


def test_a_grant_that_expires_unused_is_reported_and_a_used_one_is_not(
    tmp_path: Path, redis_url: str
) -> None:
    served = serve(
        tmp_path / "home",
        redis_url=redis_url,
        extra_env={
            "GRANTLINE_USAGE_WINDOW_SECONDS": "1",
            "GRANTLINE_USAGE_EXPECTED": "true",
            "GRANTLINE_RECONCILE_GRACE_SECONDS": "0",
        },
    )
    try:
        with served.client(CI) as client:
            unused = client.post("/v1/access-requests", json={**BODY, "ttl_seconds": 2}).json()
            used = client.post("/v1/access-requests", json={**BODY, "ttl_seconds": 2}).json()
        with served.client(RESOURCE_SERVER) as client:
            client.post("/v1/introspect", json={"token": used["credential"]["token"]})
        used_records(served, used["request_id"], 1)
        time.sleep(2.5)
        with served.client("user:operator") as client:
            passed = client.post("/v1/reconcile").json()
        assert passed["findings"] == {"never_used": 1}, passed
        with served.client(CI) as client:
            lineage = client.get(f"/v1/access-requests/{unused['request_id']}/lineage").json()
            other = client.get(f"/v1/access-requests/{used['request_id']}/lineage").json()
        last = lineage["records"][-1]
        assert (last["event"], last["data"]["finding"]) == ("reconciled", "never_used")
        assert [r["event"] for r in other["records"]][-1] == "expired"
    finally:
        served.stop()


def test_only_resource_servers_may_report_and_bad_reports_say_what_is_wrong(
    broker: Served,
) -> None:
    _, _, jti = grant(broker)
    use = {"jti": jti, "operation": "GET", "outcome": "allowed"}
    with broker.client(CI) as client:
        refused = client.post(
            "/v1/usage", json={"batch_id": secrets.token_hex(12), "observations": [use]}
        )
    assert refused.status_code == 403
    assert "resource-servers" in refused.json()["error"]["message"]
    for body, what in (
        ({"batch_id": "short", "observations": [use]}, "batch_id"),
        ({"batch_id": secrets.token_hex(12), "observations": []}, "observations"),
        (
            {"batch_id": secrets.token_hex(12), "observations": [{**use, "outcome": "maybe"}]},
            "outcome",
        ),
        (
            {"batch_id": secrets.token_hex(12), "observations": [{**use, "operation": "a b"}]},
            "operation",
        ),
    ):
        with broker.client(RESOURCE_SERVER) as client:
            answer = client.post("/v1/usage", json=body)
        assert 400 <= answer.status_code < 500, answer.text
        assert what in answer.text
    assert httpx.post(f"{broker.url}/v1/usage", json={}).status_code == 401


def test_the_holder_reports_the_outcome_of_the_action_on_the_lineage(
    broker: Served, tmp_path: Path
) -> None:
    request_id, _, _ = grant(broker)
    outcome = {"action": "export orders", "result": "succeeded", "changed": ["s3://x/q3.csv"]}
    with broker.client(CI) as client:
        recorded = client.post(f"/v1/access-requests/{request_id}/outcome", json=outcome)
        bad = client.post(
            f"/v1/access-requests/{request_id}/outcome", json={**outcome, "result": "meh"}
        )
        denied = client.post(
            "/v1/access-requests", json={**BODY, "role": "db-admin", "break_glass": False}
        )
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["event"] == "outcome"
    assert bad.status_code == 422 and "result" in bad.text
    with broker.client("user:auditor") as client:
        assert (
            client.post(f"/v1/access-requests/{request_id}/outcome", json=outcome).status_code
            == 403
        )
    with broker.client("spiffe://example.org/someone-else") as client:
        assert (
            client.post(f"/v1/access-requests/{request_id}/outcome", json=outcome).status_code
            == 404
        )
    unissued = denied.json()["request_id"]
    with broker.client(CI) as client:
        refused = client.post(f"/v1/access-requests/{unissued}/outcome", json=outcome)
        records = client.get(f"/v1/access-requests/{request_id}/lineage").json()["records"]
    assert refused.status_code == 409
    last = records[-1]
    assert last["event"] == "outcome" and last["seq"] == recorded.json()["seq"]
    assert last["data"]["by"] == CI and last["data"]["changed"] == ["s3://x/q3.csv"]
    export(broker, tmp_path / "export.jsonl")
    assert verify(broker, tmp_path / "export.jsonl")[0] == 0


def test_use_outside_the_roles_declared_scope_is_flagged(broker: Served) -> None:
    """report-read declares its scope (read operations on /reports/*): a PUT, or a read of
    another path, is a finding with an alert; uses inside it are not."""
    subject = "spiffe://example.org/ns/batch/nightly"
    body = {"target": "s3://reports", "role": "report-read", "ttl_seconds": 300}
    with broker.client(subject) as client:
        granted = client.post("/v1/access-requests", json=body).json()
    with broker.client(RESOURCE_SERVER) as client:
        jti = client.post("/v1/introspect", json={"token": granted["credential"]["token"]}).json()[
            "jti"
        ]
    request_id = granted["request_id"]
    used_records(broker, request_id, 1, reader=subject)
    inside = {"jti": jti, "operation": "GET", "resource": "/reports/q3", "outcome": "allowed"}
    report(broker, [inside])
    used_records(broker, request_id, 2, reader=subject)
    report(
        broker,
        [
            inside,
            {**inside, "operation": "PUT"},
            {**inside, "resource": "/payroll/2026"},
        ],
    )
    used_records(broker, request_id, 3, reader=subject)
    with broker.client(subject) as client:
        lineage = client.get(f"/v1/access-requests/{request_id}/lineage").json()["records"]
    findings = [r["data"] for r in lineage if r["event"] == "reconciled"]
    assert len(findings) == 1, findings
    assert findings[0]["finding"] == "used_outside_scope"
    assert findings[0]["outside"] == ["operation PUT", "resource /payroll/2026"]


def test_a_bound_grant_presented_without_its_keys_proof_is_flagged(broker: Served) -> None:
    """A key-bound grant (cnf) refused at the resource for want of its key's proof was
    presented by someone other than the grantee: a finding. The same refusal of an unbound
    grant is not one."""
    key = Ed25519PrivateKey.generate()
    public = public_jwk_of(key.public_key())
    with broker.client(CI) as client:
        bound = client.post("/v1/access-requests", json={**BODY, "public_key": public}).json()
    unbound_id, _, unbound_jti = grant(broker)
    with broker.client(RESOURCE_SERVER) as client:
        bound_jti = client.post(
            "/v1/introspect", json={"token": bound["credential"]["token"]}
        ).json()["jti"]
    used_records(broker, bound["request_id"], 1)
    used_records(broker, unbound_id, 1)
    refused = {"operation": "GET", "outcome": "denied", "reason": "invalid_dpop_proof"}
    report(broker, [{**refused, "jti": bound_jti}, {**refused, "jti": unbound_jti}])
    assert used_records(broker, bound["request_id"], 2)[1]["refusals"] == {"invalid_dpop_proof": 1}
    used_records(broker, unbound_id, 2)
    with broker.client(CI) as client:
        flagged = client.get(f"/v1/access-requests/{bound['request_id']}/lineage").json()
        quiet = client.get(f"/v1/access-requests/{unbound_id}/lineage").json()
    findings = [r["data"]["finding"] for r in flagged["records"] if r["event"] == "reconciled"]
    assert findings == ["used_by_other_identity"]
    assert not [r for r in quiet["records"] if r["event"] == "reconciled"]
