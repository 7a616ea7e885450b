"""GrantVerifier at a resource server, against tokens a served broker issued and revoked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.conftest import Served, serve

from grantline.client import (
    Grant,
    GrantlineClient,
    GrantVerifier,
    InvalidGrantError,
    VerificationPolicy,
    make_dpop_proof,
    public_jwk_of,
)
from grantline.domain.jwk import thumbprint

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
ORDERS_SERVICE = "spiffe://example.org/orders-service"
DB = "postgres://orders-db"
RESOURCE = "https://orders.example/v1/export"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    broker = serve(tmp_path_factory.mktemp("resource") / "home")
    yield broker
    broker.stop()


@pytest.fixture
def workload(served: Served) -> Iterator[GrantlineClient]:
    with GrantlineClient(served.url, served.token(CI)) as client:
        yield client


def grant(client: GrantlineClient, ttl: int = 600, **options: object) -> Grant:
    issued = client.request_access(DB, "db-read", ttl, purpose="export", **options)  # type: ignore[arg-type]
    assert isinstance(issued, Grant)
    return issued


class ShiftedClock:
    """The real clock, moved on: to see a token as a server will once it has expired."""

    def __init__(self, seconds: float) -> None:
        self.shift = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


def test_a_live_token_is_accepted_with_its_grant(served: Served, workload: GrantlineClient) -> None:
    issued = grant(workload)
    with GrantVerifier(
        served.url,
        DB,
        policy=VerificationPolicy(introspect=True),
        token=served.token(ORDERS_SERVICE),
    ) as verifier:
        verified = verifier.verify(issued.token)
    assert verified.subject == CI
    assert verified.role == "db-read"
    assert verified.request_id == issued.request_id
    assert verified.audience == (DB,)
    assert verified.issuer == served.url
    assert verified.introspected is True
    assert verified.expires_at == issued.expires_at


def test_a_revoked_token_is_refused_once_introspection_sees_the_revocation(
    served: Served, workload: GrantlineClient
) -> None:
    issued = grant(workload)
    with (
        GrantVerifier(
            served.url,
            DB,
            policy=VerificationPolicy(introspect=True, introspection_cache=timedelta(0)),
            token=served.token(ORDERS_SERVICE),
        ) as introspecting,
        GrantVerifier(served.url, DB) as local_only,
    ):
        assert introspecting.verify(issued.token).request_id == issued.request_id

        workload.revoke(issued, "the job is done")

        with pytest.raises(InvalidGrantError) as refused:
            introspecting.verify(issued.token)
        assert refused.value.code == "revoked"
        # Without introspection a JWT cannot know it was revoked: it stays valid until exp.
        assert local_only.verify(issued.token).request_id == issued.request_id


def test_a_token_for_another_target_is_refused(served: Served, workload: GrantlineClient) -> None:
    issued = grant(workload)
    with (
        GrantVerifier(served.url, "s3://reports") as verifier,
        pytest.raises(InvalidGrantError) as refused,
    ):
        verifier.verify(issued.token)
    assert refused.value.code == "wrong_audience"


def test_an_expired_token_is_refused(served: Served, workload: GrantlineClient) -> None:
    issued = grant(workload, ttl=1)
    later = ShiftedClock(seconds=10)
    with (
        GrantVerifier(served.url, DB, clock=later) as verifier,
        pytest.raises(InvalidGrantError) as refused,
    ):
        verifier.verify(issued.token)
    assert refused.value.code == "expired"


def test_the_broker_itself_reports_an_expired_token_inactive(
    served: Served, workload: GrantlineClient
) -> None:
    issued = grant(workload, ttl=1)
    time.sleep(max((issued.expires_at - datetime.now(UTC)).total_seconds(), 0) + 0.1)
    # The verifier's leeway lets it through locally; the broker has the last word.
    with (
        GrantVerifier(
            served.url,
            DB,
            policy=VerificationPolicy(introspect=True, leeway=timedelta(seconds=30)),
            token=served.token(ORDERS_SERVICE),
        ) as verifier,
        pytest.raises(InvalidGrantError) as refused,
    ):
        verifier.verify(issued.token)
    assert refused.value.code == "revoked"


def test_a_token_bound_to_a_key_needs_a_proof_made_with_that_key(
    served: Served, workload: GrantlineClient
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = grant(workload, public_key=key)
    headers = {
        "Authorization": f"DPoP {issued.token}",
        "DPoP": make_dpop_proof(key, method="POST", url=RESOURCE, access_token=issued.token),
    }
    with GrantVerifier(served.url, DB) as verifier:
        verified = verifier.verify_request("POST", RESOURCE, headers)
        assert verified.key_thumbprint == thumbprint(public_jwk_of(key))

        with pytest.raises(InvalidGrantError) as replayed:
            verifier.verify_request("POST", RESOURCE, headers)
        assert replayed.value.code == "invalid_dpop_proof"
        bearer = {"Authorization": f"Bearer {issued.token}"}
        with pytest.raises(InvalidGrantError) as as_bearer:
            verifier.verify_request("POST", RESOURCE, bearer)
        assert as_bearer.value.code == "proof_required"
