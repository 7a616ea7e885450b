"""The client reads every answer of the HTTP API into a typed value or the fitting error."""

from __future__ import annotations

import inspect
import json
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.unit.client.doubles import (
    BROKER,
    NOW,
    FakeClock,
    ScriptedBroker,
    denied,
    error,
    issued,
    pending,
)

from grantline.client import (
    NO_RETRY,
    AccessDeniedError,
    AuthenticationFailedError,
    BrokerUnavailableError,
    ConflictError,
    CredentialGoneError,
    Grant,
    GrantlineClient,
    GrantlineClientError,
    InvalidRequestError,
    NotFoundError,
    Pending,
    PermissionDeniedError,
    UnexpectedResponseError,
    errors,
    public_jwk_of,
)
from grantline.domain.errors import GrantlineError
from grantline.domain.models import CredentialType


def client_for(
    broker: ScriptedBroker,
    token: str = "identity.jwt.here",  # noqa: S107 — a placeholder, not a secret
) -> GrantlineClient:
    http = httpx.Client(transport=broker.transport())
    return GrantlineClient(BROKER, token, retry=NO_RETRY, http_client=http, clock=FakeClock())


def test_an_issued_answer_is_a_grant_with_its_credential_and_decision() -> None:
    broker = ScriptedBroker([issued("req-1", token="the.jwt.token")])
    grant = client_for(broker).request_access("postgres://orders-db", "db-read", 600)
    assert isinstance(grant, Grant)
    assert grant.request_id == "req-1"
    assert grant.token == "the.jwt.token"
    assert grant.credential.type == "jwt"
    assert grant.expires_at == NOW + timedelta(seconds=600)
    assert grant.received_at == NOW
    assert grant.lifetime == timedelta(seconds=600)
    assert grant.decision is not None
    assert grant.decision.allow is True


def test_the_request_carries_the_body_of_the_contract_and_the_bearer_token() -> None:
    broker = ScriptedBroker([issued()])
    key = Ed25519PrivateKey.generate()
    client_for(broker, token="my.identity.token").request_access(
        "postgres://orders-db",
        "db-read",
        timedelta(minutes=10),
        purpose="nightly export",
        ticket="CHG-1",
        credential_type=CredentialType.JWT,
        agent={"on_behalf_of": "user:alice", "goal": "report"},
        public_key=key,
        subject_token="principal.token.here",
    )
    request = broker.requests[0]
    assert request.method == "POST"
    assert request.url == f"{BROKER}/v1/access-requests"
    assert request.headers["authorization"] == "Bearer my.identity.token"
    assert json.loads(request.content) == {
        "target": "postgres://orders-db",
        "role": "db-read",
        "ttl_seconds": 600,
        "purpose": "nightly export",
        "ticket": "CHG-1",
        "credential_type": "jwt",
        "agent": {"on_behalf_of": "user:alice", "goal": "report"},
        # A private key given for binding is sent as its public JWK, never itself.
        "public_key": public_jwk_of(key),
        "subject_token": "principal.token.here",
    }


def test_a_ttl_that_is_not_whole_seconds_is_refused_before_sending() -> None:
    broker = ScriptedBroker([issued()])
    with pytest.raises(ValueError, match="whole seconds"):
        client_for(broker).request_access("t", "r", timedelta(seconds=1.5))
    with pytest.raises(TypeError):
        client_for(broker).request_access("t", "r", 1.5)  # type: ignore[arg-type]
    assert broker.requests == []


def test_a_pending_answer_says_which_approvals_are_missing() -> None:
    answer = client_for(ScriptedBroker([pending("req-p")])).request_access("s3://r", "rw", 60)
    assert isinstance(answer, Pending)
    assert answer.request_id == "req-p"
    assert [(f.group, f.count) for f in answer.approval.missing] == [("security", 1)]
    assert answer.approval.required[0].members == ("user:sam",)
    assert answer.approval.eligible == ("user:sam",)
    assert answer.approval.expires_at is not None


def test_a_policy_denial_raises_access_denied_with_reasons_and_request_id() -> None:
    broker = ScriptedBroker([denied("ttl_seconds 7200 exceeds the cap of 3600 for db-read")])
    with pytest.raises(AccessDeniedError) as raised:
        client_for(broker).request_access("postgres://orders-db", "db-read", 7200)
    assert raised.value.reasons == ("ttl_seconds 7200 exceeds the cap of 3600 for db-read",)
    assert raised.value.request_id == "req-d"
    assert raised.value.code == "policy_denied"
    assert raised.value.status == 403
    assert raised.value.decision is not None
    assert raised.value.decision.allow is False
    assert "3600" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "malformed_json", InvalidRequestError),
        (401, "unauthenticated", AuthenticationFailedError),
        (403, "approval_refused", PermissionDeniedError),
        (404, "not_found", NotFoundError),
        (409, "already_approved", ConflictError),
        (410, "gone", CredentialGoneError),
        (413, "payload_too_large", InvalidRequestError),
        (422, "invalid_request", InvalidRequestError),
        (429, "rate_limited", BrokerUnavailableError),
        (500, "internal_error", UnexpectedResponseError),
        (503, "store_unavailable", BrokerUnavailableError),
    ],
)
def test_each_error_status_maps_to_its_exception_with_the_brokers_code_and_message(
    status: int, code: str, kind: type[GrantlineClientError]
) -> None:
    broker = ScriptedBroker([error(status, code, "the broker's own words")])
    with pytest.raises(kind) as raised:
        client_for(broker).status("req-1")
    assert type(raised.value) is kind
    assert raised.value.code == code
    assert raised.value.status == status
    assert raised.value.message == "the broker's own words"


def test_a_forbidden_answer_that_is_no_policy_decision_is_not_an_access_denial() -> None:
    broker = ScriptedBroker([error(403, "approval_refused", "own request")])
    with pytest.raises(PermissionDeniedError) as raised:
        client_for(broker).approve("req-1", "ok")
    assert not isinstance(raised.value, AccessDeniedError)


def test_unavailable_carries_retry_after_in_seconds() -> None:
    broker = ScriptedBroker([error(503, "store_unavailable", **{"Retry-After": "7"})])
    with pytest.raises(BrokerUnavailableError) as raised:
        client_for(broker).status("req-1")
    assert raised.value.retry_after == 7.0


def test_an_error_without_a_json_body_still_maps_by_status() -> None:
    broker = ScriptedBroker([httpx.Response(502, text="<html>bad gateway</html>")])
    with pytest.raises(BrokerUnavailableError) as raised:
        client_for(broker).status("req-1")
    assert raised.value.code == "http_502"
    assert raised.value.status == 502


@pytest.mark.parametrize(
    "body",
    [
        {"request_id": "r", "status": "issued"},  # no credential
        {"request_id": "r", "credential": {"type": "jwt", "expires_at": "yesterday"}},
        {"request_id": "r", "credential": {"type": "jwt"}},
        {"credential": {"type": "jwt", "expires_at": "2030-01-01T00:00:00Z"}},
        ["not", "an", "object"],
    ],
)
def test_an_issued_answer_of_the_wrong_shape_is_an_unexpected_response(body: object) -> None:
    broker = ScriptedBroker([httpx.Response(201, json=body)])
    with pytest.raises(UnexpectedResponseError):
        client_for(broker).request_access("t", "r", 60)


def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else() -> None:
    redirect = httpx.Response(302, headers={"Location": "https://elsewhere.test/"})
    broker = ScriptedBroker([redirect])
    with pytest.raises(UnexpectedResponseError):
        client_for(broker).status("req-1")
    assert len(broker.requests) == 1


def test_a_request_id_stays_one_path_segment() -> None:
    broker = ScriptedBroker([httpx.Response(200, json={"request_id": "x", "status": "issued"})])
    client_for(broker).status("../../v1/records?after=0")
    assert (
        broker.requests[0].url.raw_path == b"/v1/access-requests/..%2F..%2Fv1%2Frecords%3Fafter%3D0"
    )


def test_status_reads_the_summary_and_the_approval_state() -> None:
    body = {
        "request_id": "req-1",
        "status": "pending_approval",
        "role": "report-write",
        "approval": {"required": [], "missing": [{"group": "security", "count": 1}]},
    }
    status = client_for(ScriptedBroker([httpx.Response(200, json=body)])).status("req-1")
    assert status.pending is True
    assert status.summary["role"] == "report-write"
    assert status.approval is not None
    assert status.approval.missing[0].group == "security"


def test_collect_reads_the_credential_without_a_decision() -> None:
    body = {
        "request_id": "req-1",
        "status": "issued",
        "credential": {"type": "jwt", "token": "t.o.k", "expires_at": "2030-01-01T12:10:00Z"},
    }
    grant = client_for(ScriptedBroker([httpx.Response(200, json=body)])).collect("req-1")
    assert grant.token == "t.o.k"
    assert grant.decision is None
    assert str(grant.request_id) == "req-1"


def test_revoke_and_introspect_read_their_answers() -> None:
    broker = ScriptedBroker(
        [
            httpx.Response(200, json={"request_id": "req-1", "status": "revoked", "already": True}),
            httpx.Response(200, json={"active": False}),
            httpx.Response(200, json={"no": "active member"}),
        ]
    )
    client = client_for(broker)
    revocation = client.revoke("req-1", "done")
    assert (revocation.status, revocation.already) == ("revoked", True)
    assert broker.bodies()[0] == {"reason": "done"}
    assert client.introspect("a.b.c") == {"active": False}
    with pytest.raises(UnexpectedResponseError):
        client.introspect("a.b.c")


def test_secrets_never_show_in_reprs() -> None:
    body = {
        "request_id": "req-1",
        "status": "issued",
        "credential": {
            "type": "x509",
            "certificate": "-----BEGIN CERTIFICATE-----",
            "private_key": "-----BEGIN PRIVATE KEY----- secret",
            "expires_at": "2030-01-01T12:10:00Z",
        },
    }
    grant = client_for(ScriptedBroker([httpx.Response(200, json=body)])).collect("req-1")
    assert grant.credential.private_key == "-----BEGIN PRIVATE KEY----- secret"
    assert "PRIVATE KEY" not in repr(grant)
    with pytest.raises(ValueError, match="no token"):
        _ = grant.token


def test_every_client_error_derives_from_the_client_root_and_the_grantline_root() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]
    assert len(classes) > 10
    assert all(issubclass(cls, GrantlineClientError) for cls in classes)
    assert issubclass(GrantlineClientError, GrantlineError)
