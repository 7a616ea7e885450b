"""A verifier with a usage reporter: an accepted token is recorded as allowed, one refused
after its signature verified as denied (with its jti), a forged one never. The broker
(JWKS, introspection, usage) is an httpx.MockTransport."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.unit.client.doubles import (
    BROKER,
    IDENTITY,
    NOW,
    FakeClock,
    Signer,
    UsageBroker,
    error,
    jwks,
)

from grantline.client import (
    NO_RETRY,
    AsyncGrantVerifier,
    BrokerUnavailableError,
    GrantVerifier,
    InvalidGrantError,
    UsageReporter,
    VerificationPolicy,
    make_dpop_proof,
    public_jwk_of,
)
from grantline.domain.jwk import thumbprint

AUDIENCE = "postgres://orders-db"
RESOURCE = "https://orders.example/v1/export?day=monday"
TOKEN_KEY = Signer()
HOLDER = Ed25519PrivateKey.generate()


class Broker:
    """The JWKS, and introspection answering ``active`` as told."""

    def __init__(self, active: bool | httpx.Response = True) -> None:
        self.active = active

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jwks.json":
            return httpx.Response(200, json=jwks(TOKEN_KEY))
        if isinstance(self.active, httpx.Response):
            return self.active
        return httpx.Response(200, json={"active": self.active, "jti": "jti-1"})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW + timedelta(seconds=30))


@pytest.fixture
def usage() -> UsageBroker:
    return UsageBroker()


def verifier(
    clock: FakeClock, reporter: UsageReporter, broker: Broker | None = None, **policy: Any
) -> GrantVerifier:
    return GrantVerifier(
        BROKER,
        AUDIENCE,
        policy=VerificationPolicy(**policy),
        token=IDENTITY,
        retry=NO_RETRY,
        http_client=httpx.Client(transport=httpx.MockTransport(broker or Broker())),
        clock=clock,
        usage=reporter,
    )


def reported(usage: UsageBroker, reporter: UsageReporter) -> list[dict[str, Any]]:
    reporter.close()
    return [
        {k: v for k, v in seen.items() if k != "at"}
        for body in usage.bodies
        for seen in body["observations"]
    ]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_accepted_request_is_recorded_as_allowed_with_its_method_and_path(
    clock: FakeClock, usage: UsageBroker
) -> None:
    reporter = usage.reporter()
    check = verifier(clock, reporter)
    check.verify_request("GET", RESOURCE, bearer(TOKEN_KEY.token()))
    check.verify_request("DELETE", "https://orders.example", bearer(TOKEN_KEY.token(jti="j2")))
    assert usage.bodies == []  # nothing is sent on the request path
    assert reported(usage, reporter) == [
        {"jti": "jti-1", "operation": "GET", "resource": "/v1/export", "outcome": "allowed"},
        {"jti": "j2", "operation": "DELETE", "resource": "/", "outcome": "allowed"},
    ]


def test_verify_records_only_when_an_operation_is_named(
    clock: FakeClock, usage: UsageBroker
) -> None:
    reporter = usage.reporter()
    check = verifier(clock, reporter)
    check.verify(TOKEN_KEY.token(jti="unnamed"))
    check.verify(TOKEN_KEY.token(), operation="s3:GetObject", resource="reports/q1.csv")
    check.verify(TOKEN_KEY.token(jti="no-resource"), operation="query")
    assert reported(usage, reporter) == [
        {
            "jti": "jti-1",
            "operation": "s3:GetObject",
            "resource": "reports/q1.csv",
            "outcome": "allowed",
        },
        {"jti": "no-resource", "operation": "query", "outcome": "allowed"},
    ]


def bound(token_key: Signer = TOKEN_KEY) -> str:
    return token_key.token(cnf={"jkt": thumbprint(public_jwk_of(HOLDER))})


@pytest.mark.parametrize(
    ("claims", "headers", "code"),
    [
        ({"exp": int(NOW.timestamp()) + 20}, None, "expired"),
        ({"nbf": int(NOW.timestamp()) + 60}, None, "not_yet_valid"),
        ({"aud": "s3://reports"}, None, "wrong_audience"),
        ({"iss": "https://impostor.test"}, None, "wrong_issuer"),
        ({"cnf": {"jkt": thumbprint(public_jwk_of(HOLDER))}}, None, "proof_required"),
        (
            {"cnf": {"jkt": thumbprint(public_jwk_of(HOLDER))}},
            {"DPoP": "not.a.proof"},
            "invalid_dpop_proof",
        ),
    ],
)
def test_a_token_refused_after_its_signature_verified_is_recorded_as_denied(
    clock: FakeClock,
    usage: UsageBroker,
    claims: dict[str, Any],
    headers: dict[str, str] | None,
    code: str,
) -> None:
    reporter = usage.reporter()
    token = TOKEN_KEY.token(jti="used-late", **claims)
    scheme = "DPoP" if headers else "Bearer"
    with pytest.raises(InvalidGrantError) as refused:
        verifier(clock, reporter).verify_request(
            "GET", RESOURCE, {"Authorization": f"{scheme} {token}", **(headers or {})}
        )
    assert refused.value.code == code
    # The refusal's code goes with it: the broker tells a bound grant used without its key.
    assert reported(usage, reporter) == [
        {
            "jti": "used-late",
            "operation": "GET",
            "resource": "/v1/export",
            "outcome": "denied",
            "reason": code,
        }
    ]


def test_a_revoked_token_is_recorded_as_denied(clock: FakeClock, usage: UsageBroker) -> None:
    reporter = usage.reporter()
    check = verifier(clock, reporter, Broker(active=False), introspect=True)
    with pytest.raises(InvalidGrantError, match="inactive"):
        check.verify(TOKEN_KEY.token(), operation="GET", resource="/v1/export")
    assert reported(usage, reporter) == [
        {
            "jti": "jti-1",
            "operation": "GET",
            "resource": "/v1/export",
            "outcome": "denied",
            "reason": "revoked",
        }
    ]


def test_an_introspection_that_cannot_be_made_is_recorded_as_an_error(
    clock: FakeClock, usage: UsageBroker
) -> None:
    reporter = usage.reporter()
    down = Broker(active=error(503, "store_unavailable"))
    with pytest.raises(BrokerUnavailableError):
        verifier(clock, reporter, down, introspect=True).verify(TOKEN_KEY.token(), operation="GET")
    assert reported(usage, reporter) == [{"jti": "jti-1", "operation": "GET", "outcome": "error"}]


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(Signer().token(kid=TOKEN_KEY.kid, jti="forged"), id="another key"),
        pytest.param(Signer().token(jti="forged"), id="unknown kid"),
        pytest.param(TOKEN_KEY.token(jti="forged")[:-4] + "AAAA", id="tampered signature"),
        pytest.param(bound(Signer()), id="bound, another key"),
    ],
)
def test_a_token_whose_signature_fails_is_never_recorded(
    clock: FakeClock, usage: UsageBroker, forged: str
) -> None:
    reporter = usage.reporter()
    with pytest.raises(InvalidGrantError):
        verifier(clock, reporter).verify_request("GET", RESOURCE, bearer(forged))
    assert reported(usage, reporter) == []


async def test_the_async_verifier_records_too(clock: FakeClock, usage: UsageBroker) -> None:
    reporter = usage.async_reporter()
    check = AsyncGrantVerifier(
        BROKER,
        AUDIENCE,
        retry=NO_RETRY,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(Broker())),
        clock=clock,
        usage=reporter,
    )
    token = bound()
    proof = make_dpop_proof(
        HOLDER, method="POST", url=RESOURCE, access_token=token, now=NOW.timestamp() + 30
    )
    await check.verify_request("POST", RESOURCE, {"Authorization": f"DPoP {token}", "DPoP": proof})
    with pytest.raises(InvalidGrantError):
        await check.verify(TOKEN_KEY.token(jti="old", exp=int(NOW.timestamp())), operation="GET")
    with pytest.raises(InvalidGrantError):
        await check.verify(Signer().token(kid=TOKEN_KEY.kid, jti="forged"), operation="GET")
    await reporter.aclose()
    await check.aclose()
    assert [
        (o["jti"], o["operation"], o["outcome"])
        for body in usage.bodies
        for o in body["observations"]
    ] == [("jti-1", "POST", "allowed"), ("old", "GET", "denied")]
