"""Every documented answer, reached on purpose against a served broker, matches the document.

The fuzz run (test_openapi_fuzz.py) rarely gets past random input to the answers of real
requests; this walk makes each one happen with the shipped policy (issued, pending, denied,
break-glass, approved, collected twice, revoked twice, reviewed, rejected, the auditor's and
operator's reads, the public endpoints) and checks each against the served document: the
status is documented for the operation, so is the content type, documented required headers
are present, and the body validates against the schema (schemathesis' response validation).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from tests.conftest import Served

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
RESOURCE_SERVER = "spiffe://example.org/resource-server"
ALICE = "user:alice"
SAM = "user:sam"
AUDITOR = "user:auditor"
OPERATOR = "user:operator"


class Answers:
    """Calls the served broker and checks each answer against its operation in the document."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.document: dict[str, Any] = httpx.get(f"{served.url}/openapi.json").json()
        self.schema = schemathesis.openapi.from_dict(self.document)
        self.checked: set[tuple[str, int]] = set()

    def call(
        self, operation_id: str, method: str, path: str, subject: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if subject is not None:
            headers["Authorization"] = f"Bearer {self.served.token(subject)}"
        response = httpx.request(method, f"{self.served.url}{path}", headers=headers, **kw)
        self.conforms(operation_id, response)
        return response

    def conforms(self, operation_id: str, response: httpx.Response) -> None:
        operation = self.schema.find_operation_by_id(operation_id)
        answers = operation.definition.raw["responses"]
        status = str(response.status_code)
        assert status in answers, f"{operation_id}: {status} is not documented: {response.text}"
        documented = answers[status]
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        content = {name.split(";")[0].strip() for name in documented.get("content", {})}
        assert media_type in content, f"{operation_id} {status}: {media_type} not in {content}"
        for name, header in documented.get("headers", {}).items():
            if header.get("required"):
                assert name in response.headers, f"{operation_id} {status}: no {name} header"
        operation.validate_response(response)
        self.checked.add((operation_id, response.status_code))


@pytest.fixture
def answers(broker: Served) -> Answers:
    return Answers(broker)


def _ask(answers: Answers, subject: str, **body: Any) -> httpx.Response:
    return answers.call("requestAccess", "POST", "/v1/access-requests", subject, json=body)


def _walk_requests(answers: Answers) -> dict[str, str]:
    """Requests in every state; their ids by what they are."""
    issued = _ask(answers, CI, target="postgres://orders-db", role="db-read", ttl_seconds=600)
    assert issued.status_code == 201
    denied = _ask(answers, CI, target="postgres://orders-db", role="db-read", ttl_seconds=6000)
    assert denied.status_code == 403
    pending = _ask(answers, ALICE, target="s3://reports", role="report-write", ttl_seconds=900)
    assert pending.status_code == 202
    doomed = _ask(answers, ALICE, target="s3://reports", role="report-write", ttl_seconds=600)
    glass = _ask(
        answers,
        ALICE,
        target="postgres://orders-db",
        role="db-admin",
        ttl_seconds=900,
        break_glass=True,
        justification="INC-4711",
    )
    assert glass.status_code == 201
    return {
        "issued": issued.json()["request_id"],
        "token": issued.json()["credential"]["token"],
        "denied": denied.json()["request_id"],
        "pending": pending.json()["request_id"],
        "doomed": doomed.json()["request_id"],
        "glass": glass.json()["request_id"],
    }


def _walk_approvals(answers: Answers, ids: dict[str, str]) -> None:
    base = "/v1/access-requests"
    listed = answers.call(
        "listPendingRequests", "GET", base, SAM, params={"status": "pending_approval"}
    )
    assert len(listed.json()["requests"]) == 2
    described = answers.call("describeAccessRequest", "GET", f"{base}/{ids['pending']}", ALICE)
    assert described.json()["status"] == "pending_approval"
    why = {"json": {"reason": "change CHG-1234"}}
    approved = answers.call(
        "approveAccessRequest", "POST", f"{base}/{ids['pending']}/approve", SAM, **why
    )
    assert approved.json()["credential_ready"] is True
    again = answers.call(
        "approveAccessRequest", "POST", f"{base}/{ids['pending']}/approve", SAM, **why
    )
    assert again.status_code == 409
    own = answers.call(
        "rejectAccessRequest", "POST", f"{base}/{ids['doomed']}/reject", ALICE, **why
    )
    assert own.status_code == 403
    rejected = answers.call(
        "rejectAccessRequest", "POST", f"{base}/{ids['doomed']}/reject", SAM, **why
    )
    assert rejected.json()["status"] == "rejected"
    path = f"{base}/{ids['pending']}/credential"
    assert answers.call("collectCredential", "GET", path, ALICE).status_code == 200
    assert answers.call("collectCredential", "GET", path, ALICE).status_code == 410
    reviewed = answers.call("reviewBreakGlass", "POST", f"{base}/{ids['glass']}/review", SAM, **why)
    assert reviewed.json()["review_status"] == "reviewed"


def _walk_grant(answers: Answers, ids: dict[str, str]) -> None:
    base = f"/v1/access-requests/{ids['issued']}"
    assert answers.call("describeAccessRequest", "GET", base, CI).json()["status"] == "issued"
    assert (
        answers.call("describeAccessRequest", "GET", "/v1/access-requests/x", CI).status_code == 404
    )
    lineage = answers.call("accessRequestLineage", "GET", f"{base}/lineage", CI)
    assert [r["event"] for r in lineage.json()["records"]][-1] == "issued"
    active = answers.call(
        "introspectToken", "POST", "/v1/introspect", CI, json={"token": ids["token"]}
    )
    assert active.json()["active"] is True
    form = answers.call("introspectToken", "POST", "/v1/introspect", CI, data={"token": "nope"})
    assert form.json() == {"active": False}
    jti = active.json()["jti"]
    use = {"jti": jti, "operation": "GET", "outcome": "allowed"}
    usage = {"json": {"batch_id": "openapi-walk-0001", "observations": [use]}}
    reported = answers.call("reportUsage", "POST", "/v1/usage", RESOURCE_SERVER, **usage)
    assert reported.status_code == 202
    assert answers.call("reportUsage", "POST", "/v1/usage", CI, **usage).status_code == 403
    outcome = {"json": {"action": "read orders", "result": "succeeded"}}
    reported = answers.call("reportOutcome", "POST", f"{base}/outcome", CI, **outcome)
    assert reported.status_code == 201
    why = {"json": {"reason": "done"}}
    assert (
        answers.call("revokeAccessRequest", "POST", f"{base}/revoke", CI, **why).json()["already"]
        is False
    )
    assert (
        answers.call("revokeAccessRequest", "POST", f"{base}/revoke", CI, **why).json()["already"]
        is True
    )
    denied = f"/v1/access-requests/{ids['denied']}/revoke"
    assert answers.call("revokeAccessRequest", "POST", denied, CI, **why).status_code == 409
    assert answers.call("describeAccessRequest", "GET", base).status_code == 401


def _walk_audit(answers: Answers, ids: dict[str, str]) -> None:
    page = answers.call("listRecords", "GET", "/v1/records", AUDITOR, params={"limit": 5})
    assert page.headers["X-Next-After"] == "5"
    lines = answers.call(
        "listRecords",
        "GET",
        "/v1/records",
        AUDITOR,
        params={"request_id": ids["issued"], "since": "2000-01-01T00:00:00Z"},
        headers={"Accept": "application/x-ndjson"},
    )
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert answers.call("listRecords", "GET", "/v1/records", CI).status_code == 403
    note = answers.call("getCheckpoint", "GET", "/v1/checkpoint", AUDITOR)
    assert note.headers["content-type"].startswith("text/plain")
    line = answers.call(
        "getCheckpoint", "GET", "/v1/checkpoint", AUDITOR, params={"format": "json"}
    )
    size = line.json()["size"]
    answers.call("inclusionProof", "GET", "/v1/records/2/proof", AUDITOR)
    proofs = {"tree_size": size, "seqs": "1,2,3"}
    answers.call("inclusionProofs", "GET", "/v1/records/proofs", AUDITOR, params=proofs)
    consistency = {"from": 2, "to": size}
    answers.call(
        "consistencyProof", "GET", "/v1/checkpoints/consistency", AUDITOR, params=consistency
    )
    too_far = answers.call("inclusionProof", "GET", f"/v1/records/{size + 1}/proof", AUDITOR)
    assert too_far.status_code == 422
    evaluated = next(r for r in lineage_of(answers, ids["issued"]) if r["event"] == "evaluated")
    digest = evaluated["data"]["policy_digest"]
    answers.call("policyBundle", "GET", f"/v1/policy/bundles/{digest}", AUDITOR)
    unknown = "sha256:" + "0" * 64
    assert (
        answers.call("policyBundle", "GET", f"/v1/policy/bundles/{unknown}", AUDITOR).status_code
        == 404
    )
    wanted = {"digests": [evaluated["data"]["input_digest"], unknown]}
    kept = answers.call("policyInputs", "POST", "/v1/policy/inputs", AUDITOR, json=wanted)
    assert kept.json()["missing"] == [unknown]
    assert answers.call("reconcile", "POST", "/v1/reconcile", OPERATOR).json()["ran"] is True
    assert answers.call("reconcile", "POST", "/v1/reconcile", AUDITOR).status_code == 403


def lineage_of(answers: Answers, request_id: str) -> list[dict[str, Any]]:
    path = f"/v1/access-requests/{request_id}/lineage"
    records: list[dict[str, Any]] = answers.call(
        "accessRequestLineage", "GET", path, AUDITOR
    ).json()["records"]
    return records


def _walk_public(answers: Answers) -> None:
    for operation_id, path in [
        ("jwks", "/.well-known/jwks.json"),
        ("discovery", "/.well-known/openid-configuration"),
        ("logKey", "/.well-known/grantline-log-key"),
        ("healthz", "/healthz"),
        ("readyz", "/readyz"),
        ("metrics", "/metrics"),
    ]:
        assert answers.call(operation_id, "GET", path).status_code == 200


def test_every_documented_kind_of_answer_matches_the_served_document(answers: Answers) -> None:
    ids = _walk_requests(answers)
    _walk_approvals(answers, ids)
    _walk_grant(answers, ids)
    _walk_audit(answers, ids)
    _walk_public(answers)
    operations = {
        operation["operationId"]
        for path in answers.document["paths"].values()
        for operation in path.values()
    }
    # Every operation's success answer was among those checked.
    assert operations <= {operation_id for operation_id, status in answers.checked if status < 300}
