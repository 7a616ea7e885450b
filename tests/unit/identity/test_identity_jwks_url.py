"""Trusted issuers whose keys come from a JWKS URL (the remote endpoint mocked with respx)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import respx

from grantline.domain.errors import AuthenticationError, DependencyUnavailableError
from grantline.evidence.jws import encode_jwt
from grantline.evidence.signer import LocalEd25519Signer
from grantline.identity.issuers import TrustedIssuer
from grantline.identity.verifier import IdentityVerifier

JWKS_URL = "https://idp.example/.well-known/jwks.json"


def token(signer: LocalEd25519Signer) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://idp.example",
        "sub": "svc",
        "aud": "grantline",
        "iat": now,
        "exp": now + 60,
    }
    return encode_jwt(claims, signer)


@respx.mock
def test_keys_are_fetched_from_the_jwks_url_once_and_reused(tmp_path: Path) -> None:
    signer = LocalEd25519Signer.load_or_create(tmp_path / "idp.pem")
    route = respx.get(JWKS_URL).mock(
        return_value=httpx.Response(200, json={"keys": [signer.public_jwk()]})
    )
    verifier = IdentityVerifier(
        [TrustedIssuer(issuer="https://idp.example", audience="grantline", jwks_url=JWKS_URL)]
    )
    assert verifier.verify(token(signer)).subject == "svc"
    assert verifier.verify(token(signer)).subject == "svc"
    assert route.call_count == 1


@respx.mock
def test_an_unreachable_jwks_url_is_a_dependency_failure_not_a_bad_token(tmp_path: Path) -> None:
    signer = LocalEd25519Signer.load_or_create(tmp_path / "idp.pem")
    respx.get(JWKS_URL).mock(side_effect=httpx.ConnectError("down"))
    verifier = IdentityVerifier(
        [TrustedIssuer(issuer="https://idp.example", audience="grantline", jwks_url=JWKS_URL)]
    )
    with pytest.raises(DependencyUnavailableError, match="unavailable") as caught:
        verifier.verify(token(signer))
    assert caught.value.status == 503


@respx.mock
def test_an_unknown_kid_does_not_trigger_a_fetch(tmp_path: Path) -> None:
    signer = LocalEd25519Signer.load_or_create(tmp_path / "idp.pem")
    stranger = LocalEd25519Signer.load_or_create(tmp_path / "other.pem")
    route = respx.get(JWKS_URL).mock(
        return_value=httpx.Response(200, json={"keys": [signer.public_jwk()]})
    )
    verifier = IdentityVerifier(
        [TrustedIssuer(issuer="https://idp.example", audience="grantline", jwks_url=JWKS_URL)]
    )
    verifier.verify(token(signer))
    for _ in range(3):
        with pytest.raises(AuthenticationError, match="unknown key"):
            verifier.verify(token(stranger))
    assert route.call_count == 1
