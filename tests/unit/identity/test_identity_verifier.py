"""The JWT attack suite (RFC 8725, RELIABILITY.md row 19) against the caller verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from grantline.domain.errors import AuthenticationError, ConfigError
from grantline.evidence.jws import encode_jwt
from grantline.evidence.signer import LocalEd25519Signer
from grantline.identity.dev_issuer import DEV_ISSUER, DevIssuer
from grantline.identity.issuers import TrustedIssuer
from grantline.identity.verifier import IdentityVerifier


@pytest.fixture
def dev(tmp_path: Path) -> DevIssuer:
    return DevIssuer(tmp_path / "dev.pem")


@pytest.fixture
def dev_key(tmp_path: Path, dev: DevIssuer) -> LocalEd25519Signer:
    """The dev issuer's own key, to sign tokens that are wrong in one claim only."""
    return LocalEd25519Signer.load_or_create(tmp_path / "dev.pem")


@pytest.fixture
def verifier(dev: DevIssuer) -> IdentityVerifier:
    return IdentityVerifier([dev.trusted_issuer()])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": DEV_ISSUER, "sub": "svc", "aud": "grantline", "iat": now, "exp": now + 60}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


def test_a_dev_token_verifies_to_its_subject(dev: DevIssuer, verifier: IdentityVerifier) -> None:
    identity = verifier.verify(dev.mint("spiffe://example.org/ci", claims={"team": "data"}))
    assert identity.subject == "spiffe://example.org/ci"
    assert identity.issuer == DEV_ISSUER
    assert identity.claims["team"] == "data"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_refused(verifier: IdentityVerifier, alg: str) -> None:
    with pytest.raises(AuthenticationError):
        verifier.verify(forge({"alg": alg, "typ": "JWT"}, claims()))


def test_hmac_signed_with_the_public_key_is_refused(
    dev: DevIssuer, verifier: IdentityVerifier
) -> None:
    kid = next(iter(dev.trusted_issuer().keys()))
    published = dev.trusted_issuer().jwks
    assert published is not None
    for secret in (json.dumps(published).encode(), published["keys"][0]["x"].encode()):
        header = b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
        signing_input = header + "." + b64(json.dumps(claims()).encode())
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(AuthenticationError, match="algorithm"):
            verifier.verify(signing_input + "." + b64(mac))


@pytest.mark.parametrize("kid", ["unknown", "../../keys/dev.pem", "/etc/passwd", ""])
def test_unknown_or_path_like_kid_is_refused(verifier: IdentityVerifier, kid: str) -> None:
    signer = LocalEd25519Signer(Ed25519PrivateKey.generate())
    token = encode_jwt(claims(), signer)
    header, rest = token.split(".", 1)
    forged = b64(json.dumps({"alg": "EdDSA", "kid": kid}).encode()) + "." + rest
    with pytest.raises(AuthenticationError, match="unknown key"):
        verifier.verify(forged)
    assert forged.split(".")[0] != header


@pytest.mark.parametrize("field", ["jku", "x5u", "jwk", "x5c"])
def test_key_carrying_headers_are_refused(verifier: IdentityVerifier, field: str) -> None:
    with pytest.raises(AuthenticationError, match="refused"):
        verifier.verify(forge({"alg": "EdDSA", field: "https://attacker.example/k"}, claims()))


def test_a_token_signed_by_another_key_with_the_right_kid_is_refused(
    dev: DevIssuer, verifier: IdentityVerifier
) -> None:
    kid = next(iter(dev.trusted_issuer().keys()))
    impostor = LocalEd25519Signer(Ed25519PrivateKey.generate())
    token = encode_jwt(claims(), impostor)
    header = b64(json.dumps({"alg": "EdDSA", "kid": kid, "typ": "JWT"}).encode())
    forged = header + "." + token.split(".", 1)[1]
    with pytest.raises(AuthenticationError, match="invalid"):
        verifier.verify(forged)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": None}, "exp"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://other.example"}, "untrusted issuer"),
        ({"sub": ""}, "subject"),
    ],
    ids=["missing-exp", "past-exp", "future-nbf", "wrong-aud", "wrong-iss", "empty-sub"],
)
def test_claims_out_of_bounds_are_refused(
    dev_key: LocalEd25519Signer, verifier: IdentityVerifier, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(AuthenticationError, match=message):
        verifier.verify(encode_jwt(claims(**overrides), dev_key))


def test_wrong_typ_is_refused(dev_key: LocalEd25519Signer, verifier: IdentityVerifier) -> None:
    with pytest.raises(AuthenticationError, match="typ"):
        verifier.verify(encode_jwt(claims(), dev_key, typ="dpop+jwt"))


def test_oversized_token_is_refused_before_parsing(verifier: IdentityVerifier) -> None:
    with pytest.raises(AuthenticationError, match="larger"):
        verifier.verify("a" * 10_000)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "..", "e30.e30.e30"])
def test_garbage_is_refused_as_malformed(verifier: IdentityVerifier, token: str) -> None:
    with pytest.raises(AuthenticationError):
        verifier.verify(token)


def test_an_hmac_algorithm_cannot_be_configured_for_an_issuer() -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        TrustedIssuer(issuer="x", audience="y", algorithms=frozenset({"HS256"}), jwks={"keys": []})


def test_a_jwks_file_issuer_with_an_rsa_key_verifies_rs256(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public_jwk.update(kid="rsa-1", use="sig")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public_jwk]}))
    issuer = TrustedIssuer(
        issuer="https://idp.example", audience="grantline", jwks_file=tmp_path / "jwks.json"
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    token = jwt.encode(
        claims(iss="https://idp.example"), pem, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    assert IdentityVerifier([issuer]).verify(token).subject == "svc"
    downgraded = jwt.encode(
        claims(iss="https://idp.example"), pem, algorithm="PS256", headers={"kid": "rsa-1"}
    )
    with pytest.raises(AuthenticationError, match="algorithm"):
        IdentityVerifier([issuer]).verify(downgraded)


class _Clock:
    def __init__(self) -> None:
        self.moment = datetime.now(UTC)

    def now(self) -> datetime:
        return self.moment


def test_a_remembered_token_is_refused_once_it_expires(dev: DevIssuer) -> None:
    clock = _Clock()
    verifier = IdentityVerifier([dev.trusted_issuer()], clock=clock)
    token = dev.mint("svc", ttl_seconds=5)
    assert verifier.verify(token).subject == "svc"
    assert verifier.verify(token).subject == "svc"  # remembered
    clock.moment += timedelta(seconds=5 + 31)
    with pytest.raises(AuthenticationError, match="expired"):
        verifier.verify(token)


def test_a_remembered_token_is_verified_again_after_the_cache_lifetime(
    dev: DevIssuer, tmp_path: Path
) -> None:
    clock = _Clock()
    issuer = dev.trusted_issuer()
    verifier = IdentityVerifier([issuer], clock=clock)
    token = dev.mint("svc", ttl_seconds=3600)
    verifier.verify(token)
    issuer.jwks = {"keys": [LocalEd25519Signer.load_or_create(tmp_path / "new.pem").public_jwk()]}
    issuer._keys = {}  # the issuer rotated its key away
    clock.moment += timedelta(seconds=61)
    with pytest.raises(AuthenticationError):
        verifier.verify(token)


@pytest.mark.parametrize("exp", [10**400, -(10**400), 10**12])
def test_an_absurd_exp_is_refused_as_malformed(
    dev_key: LocalEd25519Signer, verifier: IdentityVerifier, exp: int
) -> None:
    with pytest.raises(AuthenticationError, match="malformed"):
        verifier.verify(encode_jwt(claims(exp=exp), dev_key))
