"""Approvals end to end: a served broker, several people with their own tokens, real HTTP.

The shipped policy (policies/data.json): report-write needs 1 of security; db-admin needs
1 of security AND 2 of platform-oncall. alice asks; sam and sofia are security; bob, carol
and dan are platform-oncall, and dan is bound to deployer, which db-admin may not be held
with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from tests.conftest import Served, cli, export, serve, verify

from grantline.identity.dev_issuer import DevIssuer

pytestmark = pytest.mark.e2e

ALICE, SAM, SOFIA = "user:alice", "user:sam", "user:sofia"
BOB, CAROL, DAN = "user:bob", "user:carol", "user:dan"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    broker = serve(tmp_path / "home", extra_env={"GRANTLINE_APPROVAL_WINDOW_SECONDS": "600"})
    yield broker
    broker.stop()


def ask(served: Served, subject: str = ALICE, **overrides: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "target": "s3://reports",
        "role": "report-write",
        "ttl_seconds": 900,
        "purpose": "quarterly restatement",
        "ticket": "CHG-77",
    }
    body.update(overrides)
    with served.client(subject) as client:
        return client.post("/v1/access-requests", json=body)


def act(served: Served, subject: str, request_id: str, action: str, reason: str) -> httpx.Response:
    with served.client(subject) as client:
        return client.post(f"/v1/access-requests/{request_id}/{action}", json={"reason": reason})


def collect(served: Served, subject: str, request_id: str) -> httpx.Response:
    with served.client(subject) as client:
        return client.get(f"/v1/access-requests/{request_id}/credential")


def lineage(served: Served, request_id: str) -> list[dict[str, Any]]:
    with served.client("user:auditor") as client:
        records: list[dict[str, Any]] = client.get(
            f"/v1/access-requests/{request_id}/lineage"
        ).json()["records"]
    return records


def claims_of(served: Served, token: str, audience: str) -> dict[str, Any]:
    jwks = httpx.get(f"{served.url}/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    claims: dict[str, Any] = jwt.decode(token, key=key.key, algorithms=["EdDSA"], audience=audience)
    return claims


def test_a_role_needing_approval_is_pending_and_issues_nothing(served: Served) -> None:
    response = ask(served)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending_approval"
    assert "credential" not in body
    approval = body["approval"]
    assert approval["required"] == [{"group": "security", "count": 1, "members": [SAM, SOFIA]}]
    assert approval["missing"] == [{"group": "security", "count": 1}]
    assert approval["eligible"] == [SAM, SOFIA]
    records = lineage(served, body["request_id"])
    assert [r["event"] for r in records] == ["requested", "evaluated"]
    assert records[1]["data"]["decision"]["require_approval"] is True


def test_single_approval_issues_and_the_requester_collects_once(served: Served) -> None:
    request_id = ask(served).json()["request_id"]
    with served.client(SAM) as client:
        listed = client.get("/v1/access-requests", params={"status": "pending_approval"})
    assert [r["request_id"] for r in listed.json()["requests"]] == [request_id]

    approved = act(served, SAM, request_id, "approve", "restatement signed off by CFO")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "issued"
    assert approved.json()["credential_ready"] is True
    assert "credential" not in approved.json()

    # Only the requester collects, and only once.
    assert collect(served, SAM, request_id).status_code == 404
    first = collect(served, ALICE, request_id)
    assert first.status_code == 200, first.text
    token = first.json()["credential"]["token"]
    claims = claims_of(served, token, "s3://reports")
    assert claims["sub"] == ALICE
    assert claims["role"] == "report-write"
    again = collect(served, ALICE, request_id)
    assert again.status_code == 410
    assert "already collected" in again.json()["error"]["message"]

    events = [r["event"] for r in lineage(served, request_id)]
    # The decision is taken again on fresh active grants when the quorum is met.
    assert events == [
        "requested",
        "evaluated",
        "approval_given",
        "evaluated",
        "approved",
        "issued",
        "collected",
    ]
    given = lineage(served, request_id)[2]["data"]
    assert given["approver"]["subject"] == SAM
    assert given["reason"] == "restatement signed off by CFO"
    assert given["groups"] == ["security"]
    assert given["decision"]["policy_digest"].startswith("sha256:")


def test_two_factor_quorum_needs_every_factor(served: Served) -> None:
    response = ask(served, role="db-admin", target="postgres://orders-db", ttl_seconds=600)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    missing = response.json()["approval"]["missing"]
    assert missing == [
        {"group": "security", "count": 1},
        {"group": "platform-oncall", "count": 2},
    ]
    # dan is on call but bound to deployer: not eligible for db-admin.
    assert response.json()["approval"]["eligible"] == [BOB, CAROL, SAM, SOFIA]

    step = act(served, BOB, request_id, "approve", "on call, change looks right")
    assert step.json()["status"] == "pending_approval"
    assert step.json()["approval"]["missing"] == [
        {"group": "security", "count": 1},
        {"group": "platform-oncall", "count": 1},
    ]
    step = act(served, SAM, request_id, "approve", "security review done")
    assert step.json()["approval"]["missing"] == [{"group": "platform-oncall", "count": 1}]
    # A second security approver does not stand in for the missing on-call one.
    assert step.json()["approval"]["eligible"] == [CAROL]
    done = act(served, CAROL, request_id, "approve", "second on-call eyes")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "issued"

    approved = next(r for r in lineage(served, request_id) if r["event"] == "approved")
    assert approved["data"]["by"] == "approvers"
    assert approved["data"]["approvers"] == {"security": [SAM], "platform-oncall": [BOB, CAROL]}


def test_self_duplicate_and_conflicted_approvals_are_refused(served: Served) -> None:
    request_id = ask(served, role="db-admin", target="postgres://orders-db").json()["request_id"]

    own = act(served, ALICE, request_id, "approve", "trust me")
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "approval_refused"
    assert "own request" in own.json()["error"]["message"]

    conflicted = act(served, DAN, request_id, "approve", "looks fine")
    assert conflicted.status_code == 403
    assert "separation of duties" in conflicted.json()["error"]["message"]

    outsider = act(served, "user:mallory", request_id, "approve", "sure")
    assert outsider.status_code == 403
    assert "none of the groups" in outsider.json()["error"]["message"]

    assert act(served, BOB, request_id, "approve", "ok").status_code == 200
    twice = act(served, BOB, request_id, "approve", "really ok")
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "already_approved"

    events = [r["event"] for r in lineage(served, request_id)]
    # Refusals of parties and group members are evidence; an outsider's is not recorded.
    assert events.count("approval_refused") == 2
    assert events.count("approval_given") == 1
    assert "issued" not in events


def test_rejection_ends_the_request(served: Served) -> None:
    request_id = ask(served).json()["request_id"]
    rejected = act(served, SOFIA, request_id, "reject", "no ticket approval")
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    late = act(served, SAM, request_id, "approve", "too late")
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "not_pending"
    assert collect(served, ALICE, request_id).status_code == 410
    events = [r["event"] for r in lineage(served, request_id)]
    assert events == ["requested", "evaluated", "rejected"]


def test_cli_approve_and_reject(served: Served) -> None:
    first = ask(served).json()["request_id"]
    second = ask(served).json()["request_id"]
    env = {**served.env, "GRANTLINE_TOKEN": served.token(SAM)}
    pending = cli(env, "pending")
    assert {r["request_id"] for r in json.loads(pending.stdout)["requests"]} == {first, second}
    approved = cli(env, "approve", first, "--reason", "fine")
    assert json.loads(approved.stdout)["status"] == "issued"
    rejected = cli(env, "reject", second, "--reason", "no")
    assert json.loads(rejected.stdout)["status"] == "rejected"
    refused = cli(
        {**served.env, "GRANTLINE_TOKEN": served.token(ALICE)},
        "approve",
        second,
        "--reason",
        "x",
        check=False,
    )
    assert refused.returncode != 0
    collected = cli({**served.env, "GRANTLINE_TOKEN": served.token(ALICE)}, "collect", first)
    assert json.loads(collected.stdout)["credential"]["token"]


def test_a_pending_request_expires_after_its_window(tmp_path: Path) -> None:
    broker = serve(tmp_path / "home", extra_env={"GRANTLINE_APPROVAL_WINDOW_SECONDS": "1"})
    try:
        request_id = ask(broker).json()["request_id"]
        assert request_id
        time.sleep(1.5)
        with broker.client(ALICE) as client:
            assert client.get(f"/v1/access-requests/{request_id}").json()["status"] == "expired"
        late = act(broker, SAM, request_id, "approve", "back from lunch")
        assert late.status_code == 409
        assert "expired" in late.json()["error"]["message"]
        events = lineage(broker, request_id)
        assert [r["event"] for r in events] == ["requested", "evaluated", "expired"]
        assert events[-1]["data"]["phase"] == "pending_approval"
        assert events[-1]["data"]["missing"] == [{"group": "security", "count": 1}]
    finally:
        broker.stop()


def test_reconciler_expires_pending_requests(tmp_path: Path) -> None:
    broker = serve(tmp_path / "home", extra_env={"GRANTLINE_APPROVAL_WINDOW_SECONDS": "1"})
    try:
        request_id = ask(broker).json()["request_id"]
        time.sleep(1.5)
        with broker.client("user:operator") as client:
            report = client.post("/v1/reconcile").json()
        assert report["expired"] == 1
        assert [r["event"] for r in lineage(broker, request_id)][-1] == "expired"
    finally:
        broker.stop()


def test_the_lineage_of_approved_requests_verifies_offline(served: Served, tmp_path: Path) -> None:
    request_id = ask(served, role="db-admin", target="postgres://orders-db").json()["request_id"]
    assert act(served, ALICE, request_id, "approve", "me too").status_code == 403
    for approver in (BOB, SAM, CAROL):
        assert act(served, approver, request_id, "approve", f"{approver} agrees").is_success
    collect(served, ALICE, request_id)
    export(served, tmp_path / "export.jsonl")
    code, output = verify(served, tmp_path / "export.jsonl")
    assert code == 0, output


def test_the_decision_is_taken_again_when_the_quorum_is_met(
    tmp_path: Path, policies_copy: Path
) -> None:
    # alice may also deploy; deployer and db-admin may not be held together.
    data = json.loads((policies_copy / "data.json").read_text())
    for binding in data["grantline"]["bindings"]:
        if binding["subject"] == ALICE:
            binding["roles"].append("deployer")
    (policies_copy / "data.json").write_text(json.dumps(data))
    broker = serve(tmp_path / "home", policies=policies_copy)
    try:
        pending = ask(broker, role="db-admin", target="postgres://orders-db", ttl_seconds=600)
        request_id = pending.json()["request_id"]
        # Meanwhile she gets deployer, which needs no approval.
        deploy = ask(broker, role="deployer", target="k8s://prod", ttl_seconds=600)
        assert deploy.status_code == 201, deploy.text
        for approver in (BOB, CAROL):
            assert act(broker, approver, request_id, "approve", "ok").json()["status"] == (
                "pending_approval"
            )
        last = act(broker, SAM, request_id, "approve", "ok")
        assert last.status_code == 200
        assert last.json()["status"] == "denied"
        assert "separation of duties" in last.json()["reasons"][0]
        events = [r["event"] for r in lineage(broker, request_id)]
        assert events[-3:] == ["approval_given", "evaluated", "denied"]
        assert "issued" not in events
        assert collect(broker, ALICE, request_id).status_code == 410
    finally:
        broker.stop()


def test_a_revoked_credential_can_no_longer_be_collected(served: Served) -> None:
    request_id = ask(served).json()["request_id"]
    act(served, SAM, request_id, "approve", "ok").raise_for_status()
    with served.client("user:auditor") as client:
        client.post(
            f"/v1/access-requests/{request_id}/revoke", json={"reason": "approved by mistake"}
        ).raise_for_status()
    late = collect(served, ALICE, request_id)
    assert late.status_code == 410
    assert "revoked" in late.json()["error"]["message"]
    with served.client(ALICE) as client:
        summary = client.get(f"/v1/access-requests/{request_id}").json()
    assert summary["credential_ready"] is False


def test_outsiders_learn_nothing_and_write_nothing(served: Served) -> None:
    request_id = ask(served).json()["request_id"]
    before = len(lineage(served, request_id))
    outsider = act(served, "spiffe://example.org/ci-runner", request_id, "approve", "x")
    assert outsider.status_code == 403
    assert len(lineage(served, request_id)) == before
    assert act(served, SAM, "no-such-request", "approve", "x").status_code == 404


def test_an_agent_cannot_approve_for_a_person(served: Served) -> None:
    request_id = ask(served).json()["request_id"]
    issuer = DevIssuer(served.home / "keys" / "dev-issuer.pem")
    delegated = issuer.mint(SAM, claims={"act": {"sub": "spiffe://example.org/agents/helper"}})
    response = httpx.post(
        f"{served.url}/v1/access-requests/{request_id}/approve",
        json={"reason": "the agent thinks it is fine"},
        headers={"Authorization": f"Bearer {delegated}"},
    )
    assert response.status_code == 403
    assert "not by an agent" in response.json()["error"]["message"]
