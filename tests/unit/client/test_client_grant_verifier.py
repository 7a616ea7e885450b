"""GrantVerifier: every check refuses what it should, the JWKS is cached, introspection fails
closed, and a bound token needs its proof. The JWKS is served by respx (remote JWKS);
introspection by httpx.MockTransport."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.unit.client.doubles import BROKER, NOW, FakeClock, Signer, error, jwks

from grantline.client import (
    NO_RETRY,
    AsyncGrantVerifier,
    BrokerUnavailableError,
    GrantVerifier,
    InvalidGrantError,
    UnexpectedResponseError,
    VerificationPolicy,
    make_dpop_proof,
    public_jwk_of,
)
from grantline.domain.jwk import thumbprint

AUDIENCE = "postgres://orders-db"
JWKS_URL = f"{BROKER}/.well-known/jwks.json"
RESOURCE = "https://orders.example/v1/export"
TOKEN_KEY = Signer()
LOG_KEY = Signer(purpose="log")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW + timedelta(seconds=30))


@pytest.fixture
def served_jwks() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as router:
        yield router.get(JWKS_URL).mock(
            return_value=httpx.Response(200, json=jwks(TOKEN_KEY, LOG_KEY))
        )


def verifier(clock: FakeClock, **policy: Any) -> GrantVerifier:
    return GrantVerifier(
        BROKER, AUDIENCE, policy=VerificationPolicy(**policy), retry=NO_RETRY, clock=clock
    )


class IntrospectingBroker:
    """JWKS and introspection, answering ``active`` as told; counts introspections."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.introspections: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jwks.json":
            return httpx.Response(200, json=jwks(TOKEN_KEY))
        assert request.headers["authorization"] == "Bearer resource.server.identity"
        self.introspections.append(json.loads(request.content))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def verifier(self, clock: FakeClock, **policy: Any) -> GrantVerifier:
        return GrantVerifier(
            BROKER,
            AUDIENCE,
            policy=VerificationPolicy(introspect=True, **policy),
            token="resource.server.identity",
            retry=NO_RETRY,
            http_client=httpx.Client(transport=httpx.MockTransport(self)),
            clock=clock,
        )


def active(**claims: Any) -> httpx.Response:
    return httpx.Response(200, json={"active": True, "jti": "jti-1", **claims})


def test_a_live_token_verifies_into_a_typed_grant(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    grant = verifier(clock).verify(TOKEN_KEY.token(act={"sub": "spiffe://example.org/agent"}))
    assert grant.subject == "spiffe://example.org/ci-runner"
    assert grant.role == "db-read"
    assert grant.request_id == "req-1"
    assert grant.audience == (AUDIENCE,)
    assert grant.issuer == BROKER
    assert grant.token_id == "jti-1"
    assert grant.expires_at == NOW + timedelta(seconds=600)
    assert grant.actor == "spiffe://example.org/agent"
    assert grant.key_thumbprint is None
    assert grant.introspected is False


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"aud": "s3://reports"}, "wrong_audience"),
        ({"iss": "https://impostor.test"}, "wrong_issuer"),
        ({"role": None}, "missing_claim"),
        ({"request_id": None}, "missing_claim"),
        ({"exp": int(NOW.timestamp()) + 20}, "expired"),
        ({"nbf": int(NOW.timestamp()) + 60}, "not_yet_valid"),
        ({"exp": "tomorrow"}, "missing_claim"),
        ({"kid": "no-such-kid"}, "unknown_key"),
    ],
)
def test_a_token_failing_a_check_is_refused_with_that_checks_code(
    clock: FakeClock, served_jwks: respx.Route, claims: dict[str, Any], code: str
) -> None:
    with pytest.raises(InvalidGrantError) as refused:
        verifier(clock).verify(TOKEN_KEY.token(**claims))
    assert refused.value.code == code
    assert refused.value.status == 401


def test_expiry_allows_the_leeway_and_no_more(clock: FakeClock, served_jwks: respx.Route) -> None:
    token = TOKEN_KEY.token(exp=int(clock.now().timestamp()))
    check = verifier(clock, leeway=timedelta(seconds=5))
    check.verify(token)
    clock.advance(4.9)
    check.verify(token)
    clock.advance(0.1)
    with pytest.raises(InvalidGrantError, match="expired"):
        check.verify(token)


def test_a_token_signed_by_another_key_with_a_known_kid_is_refused(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    forged = Signer().token(kid=TOKEN_KEY.kid)
    with pytest.raises(InvalidGrantError) as refused:
        verifier(clock).verify(forged)
    assert refused.value.code == "bad_signature"


def test_a_token_signed_with_the_log_key_is_refused(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    with pytest.raises(InvalidGrantError) as refused:
        verifier(clock).verify(LOG_KEY.token())
    assert refused.value.code == "unknown_key"


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_hmac_tokens_are_refused_before_any_key_is_used(
    clock: FakeClock, served_jwks: respx.Route, alg: str
) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": TOKEN_KEY.kid}
    payload = jwt.decode(TOKEN_KEY.token(), options={"verify_signature": False})
    parts = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in (header, payload)
    ]
    with pytest.raises(InvalidGrantError) as refused:
        verifier(clock).verify(".".join([*parts, "c2ln"]))
    assert refused.value.code == "wrong_algorithm"
    assert served_jwks.call_count == 0


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b", "x" * 20000])
def test_malformed_tokens_are_refused(
    clock: FakeClock, served_jwks: respx.Route, token: str
) -> None:
    with pytest.raises(InvalidGrantError) as refused:
        verifier(clock).verify(token)
    assert refused.value.code == "malformed_token"


def test_an_unsafe_algorithm_list_is_refused() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        VerificationPolicy(algorithms=("HS256",))


# -- JWKS caching -------------------------------------------------------------------------


def test_the_jwks_is_fetched_once_and_reused(clock: FakeClock, served_jwks: respx.Route) -> None:
    check = verifier(clock)
    for _ in range(5):
        check.verify(TOKEN_KEY.token())
    assert served_jwks.call_count == 1


def test_the_jwks_is_fetched_again_once_it_is_old(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    check = verifier(clock, jwks_max_age=timedelta(minutes=5), leeway=timedelta(hours=1))
    check.verify(TOKEN_KEY.token())
    clock.advance(299)
    check.verify(TOKEN_KEY.token())
    assert served_jwks.call_count == 1
    clock.advance(1)
    check.verify(TOKEN_KEY.token())
    assert served_jwks.call_count == 2


def test_an_unknown_kid_fetches_again_at_most_once_per_interval(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    check = verifier(clock, jwks_min_refetch=timedelta(seconds=30), leeway=timedelta(hours=1))
    check.verify(TOKEN_KEY.token())
    rotated = Signer()
    for _ in range(3):
        with pytest.raises(InvalidGrantError, match="no token key"):
            check.verify(rotated.token())
    assert served_jwks.call_count == 1  # the first fetch was just now: not again so soon
    clock.advance(30)
    served_jwks.mock(return_value=httpx.Response(200, json=jwks(TOKEN_KEY, rotated)))
    assert check.verify(rotated.token()).subject
    assert served_jwks.call_count == 2
    for _ in range(3):
        with pytest.raises(InvalidGrantError):
            check.verify(Signer().token())
    assert served_jwks.call_count == 2


def test_keys_fetched_before_are_kept_while_the_broker_is_unreachable(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    check = verifier(clock, leeway=timedelta(hours=1))
    check.verify(TOKEN_KEY.token())
    served_jwks.mock(side_effect=httpx.ConnectError("refused"))
    clock.advance(600)
    assert check.verify(TOKEN_KEY.token()).subject
    assert served_jwks.call_count == 2


def test_without_any_keys_an_unreachable_broker_fails_closed(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    served_jwks.mock(side_effect=httpx.ConnectError("refused"))
    check = verifier(clock)
    with pytest.raises(BrokerUnavailableError):
        check.verify(TOKEN_KEY.token())
    with pytest.raises(BrokerUnavailableError):  # and does not hammer it meanwhile
        check.verify(TOKEN_KEY.token())
    assert served_jwks.call_count == 1


# -- introspection ------------------------------------------------------------------------


def test_introspection_refuses_a_token_the_broker_reports_inactive(clock: FakeClock) -> None:
    broker = IntrospectingBroker(httpx.Response(200, json={"active": False}))
    with pytest.raises(InvalidGrantError) as refused:
        broker.verifier(clock).verify(TOKEN_KEY.token())
    assert refused.value.code == "revoked"
    assert broker.introspections == [{"token": TOKEN_KEY.token()}]


def test_introspection_remembers_an_active_token_only_briefly(clock: FakeClock) -> None:
    broker = IntrospectingBroker(active(), httpx.Response(200, json={"active": False}))
    check = broker.verifier(clock, introspection_cache=timedelta(seconds=5))
    token = TOKEN_KEY.token()
    assert check.verify(token).introspected is True
    clock.advance(4)
    check.verify(token)
    assert len(broker.introspections) == 1
    clock.advance(1)
    with pytest.raises(InvalidGrantError, match="revoked"):
        check.verify(token)
    assert len(broker.introspections) == 2


def test_with_no_introspection_cache_the_broker_is_asked_every_time(clock: FakeClock) -> None:
    broker = IntrospectingBroker(active())
    check = broker.verifier(clock, introspection_cache=timedelta(0))
    for _ in range(3):
        check.verify(TOKEN_KEY.token())
    assert len(broker.introspections) == 3


def test_an_answer_about_another_token_is_refused(clock: FakeClock) -> None:
    broker = IntrospectingBroker(active(jti="someone-elses"))
    with pytest.raises(InvalidGrantError, match="another token"):
        broker.verifier(clock).verify(TOKEN_KEY.token())


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (error(503, "store_unavailable"), BrokerUnavailableError),
        (httpx.Response(200, json={"active": "yes"}), UnexpectedResponseError),
        (httpx.Response(200, text="<html>"), UnexpectedResponseError),
    ],
)
def test_introspection_that_fails_fails_closed(
    clock: FakeClock, answer: httpx.Response, kind: type[Exception]
) -> None:
    broker = IntrospectingBroker(answer)
    with pytest.raises(kind):
        broker.verifier(clock).verify(TOKEN_KEY.token())


def test_introspection_needs_the_resource_servers_own_token() -> None:
    with pytest.raises(ValueError, match="identity token"):
        GrantVerifier(BROKER, AUDIENCE, policy=VerificationPolicy(introspect=True))


# -- proof of possession ------------------------------------------------------------------

HOLDER = Ed25519PrivateKey.generate()


def bound_token(key: Ed25519PrivateKey = HOLDER) -> str:
    return TOKEN_KEY.token(cnf={"jkt": thumbprint(public_jwk_of(key))})


def proof(token: str, key: Ed25519PrivateKey = HOLDER, method: str = "POST") -> str:
    return make_dpop_proof(
        key, method=method, url=RESOURCE, access_token=token, now=NOW.timestamp() + 30
    )


def test_a_bound_token_verifies_with_a_fresh_proof_of_its_key(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    token = bound_token()
    grant = verifier(clock).verify(token, proof=proof(token), method="POST", url=RESOURCE)
    assert grant.key_thumbprint == thumbprint(public_jwk_of(HOLDER))


@pytest.mark.parametrize(
    ("make_proof", "code"),
    [
        (lambda token: None, "proof_required"),
        (lambda token: proof(token, key=Ed25519PrivateKey.generate()), "invalid_dpop_proof"),
        (lambda token: proof(token, method="GET"), "invalid_dpop_proof"),
        (lambda token: proof("another.access.token"), "invalid_dpop_proof"),
    ],
)
def test_a_bound_token_without_a_valid_proof_is_refused(
    clock: FakeClock, served_jwks: respx.Route, make_proof: Any, code: str
) -> None:
    token = bound_token()
    with pytest.raises(InvalidGrantError) as refused:
        verifier(clock).verify(token, proof=make_proof(token), method="POST", url=RESOURCE)
    assert refused.value.code == code


def test_a_proof_is_accepted_once(clock: FakeClock, served_jwks: respx.Route) -> None:
    token = bound_token()
    check = verifier(clock)
    once = proof(token)
    check.verify(token, proof=once, method="POST", url=RESOURCE)
    with pytest.raises(InvalidGrantError, match="replayed"):
        check.verify(token, proof=once, method="POST", url=RESOURCE)


def test_request_headers_carry_the_scheme_token_and_proof(
    clock: FakeClock, served_jwks: respx.Route
) -> None:
    token, check = bound_token(), verifier(clock)
    headers = {"authorization": f"DPoP {token}", "DPoP": proof(token)}
    assert check.verify_request("POST", RESOURCE, headers).key_thumbprint
    with pytest.raises(InvalidGrantError) as as_bearer:
        check.verify_request("POST", RESOURCE, {"Authorization": f"Bearer {token}"})
    assert as_bearer.value.code == "proof_required"
    plain = TOKEN_KEY.token()
    assert check.verify_request("GET", RESOURCE, {"Authorization": f"Bearer {plain}"}).subject
    with pytest.raises(InvalidGrantError) as unbound_dpop:
        check.verify_request("GET", RESOURCE, {"Authorization": f"DPoP {plain}"})
    assert unbound_dpop.value.code == "unbound_token"
    with pytest.raises(InvalidGrantError) as missing:
        check.verify_request("GET", RESOURCE, {"Authorization": "Basic dXNlcjpwYXNz"})
    assert missing.value.code == "missing_token"


def test_require_proof_refuses_unbound_tokens(clock: FakeClock, served_jwks: respx.Route) -> None:
    with pytest.raises(InvalidGrantError) as refused:
        verifier(clock, require_proof=True).verify(TOKEN_KEY.token())
    assert refused.value.code == "unbound_token"


def test_method_and_url_go_together(clock: FakeClock, served_jwks: respx.Route) -> None:
    with pytest.raises(ValueError, match="both"):
        verifier(clock).verify(TOKEN_KEY.token(), method="POST")


async def test_the_async_verifier_makes_the_same_checks(clock: FakeClock) -> None:
    broker = IntrospectingBroker(active(), httpx.Response(200, json={"active": False}))
    check = AsyncGrantVerifier(
        BROKER,
        [AUDIENCE, "postgres://replica"],
        policy=VerificationPolicy(introspect=True, introspection_cache=timedelta(0)),
        token="resource.server.identity",
        retry=NO_RETRY,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(broker)),
        clock=clock,
    )
    token = bound_token()
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof(token)}
    grant = await check.verify_request("POST", RESOURCE, headers)
    assert grant.introspected is True
    assert grant.key_thumbprint is not None
    with pytest.raises(InvalidGrantError) as refused:
        await check.verify(TOKEN_KEY.token(aud="s3://reports"))
    assert refused.value.code == "wrong_audience"
    with pytest.raises(InvalidGrantError) as revoked:
        await check.verify(TOKEN_KEY.token())
    assert revoked.value.code == "revoked"
    await check.aclose()
