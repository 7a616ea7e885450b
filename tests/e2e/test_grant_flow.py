"""A served broker on its embedded defaults, driven over HTTP as a workload would."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from tests.conftest import Served

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
RELEASE = "spiffe://example.org/release-bot"
AUDITOR = "user:auditor"


def ask(served: Served, subject: str, **overrides: Any) -> httpx.Response:
    body = {
        "target": "postgres://orders-db",
        "role": "db-read",
        "ttl_seconds": 600,
        "purpose": "nightly export",
    }
    body.update(overrides)
    with served.client(subject) as client:
        return client.post("/v1/access-requests", json=body)


def test_allowed_request_returns_a_jwt_that_verifies_against_the_served_jwks(
    broker: Served,
) -> None:
    response = ask(broker, CI)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "issued"
    assert body["decision"]["allow"] is True
    assert body["decision"]["policy_digest"].startswith("sha256:")
    token = body["credential"]["token"]
    jwks = httpx.get(f"{broker.url}/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    claims = jwt.decode(token, key=key.key, algorithms=["EdDSA"], audience="postgres://orders-db")
    assert claims["sub"] == CI
    assert claims["role"] == "db-read"
    assert claims["request_id"] == body["request_id"]
    assert claims["exp"] - claims["iat"] == 600
    assert {"iss", "nbf", "jti"} <= claims.keys()
    discovery = httpx.get(f"{broker.url}/.well-known/openid-configuration").json()
    assert discovery["jwks_uri"].endswith("/.well-known/jwks.json")


def test_ttl_above_the_cap_is_denied_with_the_cap_in_the_reason(broker: Served) -> None:
    response = ask(broker, CI, ttl_seconds=3601)
    assert response.status_code == 403
    body = response.json()
    assert body["status"] == "denied"
    assert body["error"]["code"] == "policy_denied"
    assert any("3600" in reason for reason in body["decision"]["reasons"])
    assert "credential" not in body


def test_role_not_bound_to_the_caller_is_denied(broker: Served) -> None:
    response = ask(broker, CI, role="deployer", target="k8s://prod")
    assert response.status_code == 403
    assert response.json()["decision"]["allow"] is False


def test_unknown_role_is_denied(broker: Served) -> None:
    response = ask(broker, CI, role="no-such-role")
    assert response.status_code == 403


def test_role_in_sod_conflict_with_an_active_grant_is_denied_until_that_grant_is_revoked(
    broker: Served,
) -> None:
    first = ask(broker, RELEASE, role="deployer", target="k8s://prod")
    assert first.status_code == 201, first.text
    conflicting = ask(broker, RELEASE, role="prod-approver", target="k8s://prod")
    assert conflicting.status_code == 403
    assert any("deployer" in r for r in conflicting.json()["decision"]["reasons"])
    with broker.client(RELEASE) as client:
        revoked = client.post(
            f"/v1/access-requests/{first.json()['request_id']}/revoke", json={"reason": "done"}
        )
    assert revoked.status_code == 200
    assert ask(broker, RELEASE, role="prod-approver", target="k8s://prod").status_code == 201


def test_revoked_token_is_inactive_at_introspection(broker: Served) -> None:
    issued = ask(broker, CI).json()
    token = issued["credential"]["token"]
    with broker.client(CI) as client:
        assert client.post("/v1/introspect", json={"token": token}).json()["active"] is True
        revoke = client.post(
            f"/v1/access-requests/{issued['request_id']}/revoke", json={"reason": "job finished"}
        )
        assert revoke.json()["status"] == "revoked"
        again = client.post(
            f"/v1/access-requests/{issued['request_id']}/revoke", json={"reason": "twice"}
        )
        assert again.status_code == 200
        assert client.post("/v1/introspect", json={"token": token}).json() == {"active": False}
        summary = client.get(f"/v1/access-requests/{issued['request_id']}").json()
    assert summary["status"] == "revoked"
    assert summary["revoked_by"] == CI


def test_lineage_holds_requested_evaluated_issued_revoked_with_no_token(broker: Served) -> None:
    issued = ask(broker, CI).json()
    request_id = issued["request_id"]
    with broker.client(CI) as client:
        client.post(f"/v1/access-requests/{request_id}/revoke", json={"reason": "done"})
        lineage = client.get(f"/v1/access-requests/{request_id}/lineage").json()
    events = [record["event"] for record in lineage["records"]]
    assert events == ["requested", "evaluated", "approved", "issued", "revoked"]
    # Approved by policy alone, and the record says by which rule of which policy.
    approved = lineage["records"][2]["data"]
    assert approved["by"] == "policy"
    assert approved["rule"] == "rbac"
    assert approved["policy_digest"] == issued["decision"]["policy_digest"]
    assert all(record["request_id"] == request_id for record in lineage["records"])
    assert all(
        {"seq", "prev", "kid", "sig", "at"} <= record.keys() for record in lineage["records"]
    )
    text = str(lineage)
    assert issued["credential"]["token"] not in text
    assert issued["credential"]["token"].split(".")[2] not in text


def test_a_caller_cannot_read_another_callers_request_but_an_auditor_can(broker: Served) -> None:
    request_id = ask(broker, CI).json()["request_id"]
    with broker.client(RELEASE) as other:
        assert other.get(f"/v1/access-requests/{request_id}").status_code == 404
        assert other.get("/v1/records").status_code == 403
    with broker.client(AUDITOR) as auditor:
        assert auditor.get(f"/v1/access-requests/{request_id}").json()["status"] == "issued"
        records = auditor.get("/v1/records", params={"after": 0, "limit": 2}).json()
    assert [r["seq"] for r in records["records"]] == [1, 2]
    assert records["next_after"] == 2


@pytest.mark.parametrize(
    ("headers", "content", "status", "code"),
    [
        ({}, b'{"target": ', 400, "malformed_json"),
        (
            {},
            b'{"target": "t", "role": "db-read", "ttl_seconds": 60, "colour": "red"}',
            422,
            "invalid_request",
        ),
        ({}, b'{"target": "t", "role": "db-read", "ttl_seconds": -5}', 422, "invalid_request"),
        (
            {},
            b'{"target": "t", "role": "db-read", "ttl_seconds": 99999999}',
            422,
            "invalid_request",
        ),
        ({}, b'{"target": "t", "role": "db-read", "ttl_seconds": "60"}', 422, "invalid_request"),
        (
            {},
            b'{"target": "t", "role": "db-read", "ttl_seconds": 60, "credential_type": "ssh"}',
            422,
            "invalid_request",
        ),
        ({}, b'{"target": "' + b"x" * 70_000 + b'"}', 413, "payload_too_large"),
    ],
    ids=[
        "malformed",
        "unknown-field",
        "negative-ttl",
        "absurd-ttl",
        "string-ttl",
        "unknown-type",
        "oversized",
    ],
)
def test_bad_input_gets_a_4xx_with_the_error_shape(
    broker: Served, headers: dict[str, str], content: bytes, status: int, code: str
) -> None:
    with broker.client(CI) as client:
        response = client.post(
            "/v1/access-requests",
            content=content,
            headers={"Content-Type": "application/json", **headers},
        )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ],
    ids=["missing", "empty", "basic", "garbage", "alg-none"],
)
def test_v1_calls_without_a_valid_identity_are_401(broker: Served, authorization: str) -> None:
    response = httpx.post(
        f"{broker.url}/v1/access-requests",
        json={"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60},
        headers={"Authorization": authorization} if authorization else {},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_readiness_and_metrics_are_served(broker: Served) -> None:
    ready = httpx.get(f"{broker.url}/readyz").json()
    checks = {"store": True, "signer": True, "policy": True, "persistence": True}
    assert ready == {"ready": True, "checks": checks}
    ask(broker, CI)
    metrics = httpx.get(f"{broker.url}/metrics").text
    assert 'route="/v1/access-requests",status="201"' in metrics


def test_edge_inputs_get_precise_answers(broker: Served) -> None:
    issued = ask(broker, CI).json()
    with broker.client(CI) as client:
        form = client.post("/v1/introspect", data={"token": issued["credential"]["token"]})
        assert form.status_code == 200
        assert form.json()["active"] is True
        empty = client.post("/v1/introspect", data={})
        assert empty.status_code == 422
    vault = ask(broker, CI, credential_type="vault_token")
    assert vault.status_code == 422
    assert vault.json()["error"]["code"] == "credential_type_unavailable"
    with broker.client(AUDITOR) as auditor:
        huge = auditor.get("/v1/records", params={"after": 10**20})
    assert huge.status_code == 422
