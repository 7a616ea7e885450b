"""DPoP proofs for tokens bound with cnf.jkt: made with the bound key they verify, else refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from grantline.client import ProofOfPossessionError, make_dpop_proof, verify_proof_of_possession
from grantline.client.pop import DpopPrivateKey, access_token_hash, request_target
from grantline.domain.errors import AuthenticationError
from grantline.domain.jwk import thumbprint

NOW = 1_800_000_000.0
METHOD = "POST"
URL = "https://resource.example/v1/things"
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2lnbmF0dXJl"

ED25519 = ed25519.Ed25519PrivateKey.generate()
P256 = ec.generate_private_key(ec.SECP256R1())
RSA = rsa.generate_private_key(65537, 2048)
KEYS: dict[str, DpopPrivateKey] = {
    "Ed25519": ED25519,
    "P-256": P256,
    "P-384": ec.generate_private_key(ec.SECP384R1()),
    "P-521": ec.generate_private_key(ec.SECP521R1()),
    "RSA": RSA,
}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def header_of(proof: str) -> dict[str, Any]:
    return jwt.get_unverified_header(proof)


def claims_bound_to(key: DpopPrivateKey) -> dict[str, Any]:
    """The verified claims of an access token bound to ``key``, as a resource server has them."""
    jwk = header_of(make_dpop_proof(key, method="GET", url=URL))["jwk"]
    return {"sub": "workload", "aud": "resource", "cnf": {"jkt": thumbprint(jwk)}}


def proof_with(
    key: DpopPrivateKey, alg: str, *, header: dict[str, Any] | None = None, **claims: Any
) -> str:
    """A proof signed by ``key`` whose header and claims are overridden (None drops a claim)."""
    honest = make_dpop_proof(key, method=METHOD, url=URL, access_token=TOKEN, now=NOW)
    body = {**jwt.decode(honest, options={"verify_signature": False}), **claims}
    body = {name: value for name, value in body.items() if value is not None}
    fields = {**header_of(honest), **(header or {})}
    fields = {name: value for name, value in fields.items() if value is not None}
    return jwt.encode(body, key, algorithm=alg, headers=fields)


def verify(proof: str, key: DpopPrivateKey = ED25519, **overrides: Any) -> str:
    arguments: dict[str, Any] = {"method": METHOD, "url": URL, "access_token": TOKEN, "now": NOW}
    return verify_proof_of_possession(claims_bound_to(key), proof, **(arguments | overrides))


def refused(proof: str, key: DpopPrivateKey = ED25519, **overrides: Any) -> str:
    with pytest.raises(ProofOfPossessionError) as caught:
        verify(proof, key, **overrides)
    return str(caught.value)


def good_proof(key: DpopPrivateKey = ED25519, **overrides: Any) -> str:
    arguments: dict[str, Any] = {"method": METHOD, "url": URL, "access_token": TOKEN, "now": NOW}
    return make_dpop_proof(key, **(arguments | overrides))


# --- proofs made with the bound key ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KEYS))
def test_a_proof_made_with_the_bound_key_verifies_for_each_key_type(name: str) -> None:
    key = KEYS[name]
    assert verify(good_proof(key), key) == claims_bound_to(key)["cnf"]["jkt"]


@pytest.mark.parametrize(
    ("name", "alg"),
    [("Ed25519", "EdDSA"), ("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512")],
)
def test_each_key_type_signs_with_its_algorithm(name: str, alg: str) -> None:
    assert header_of(good_proof(KEYS[name]))["alg"] == alg


@pytest.mark.parametrize("alg", ["PS256", "RS256", "RS512"])
def test_rsa_proofs_default_to_ps256_and_may_use_rs256(alg: str) -> None:
    overrides = {} if alg == "PS256" else {"alg": alg}
    proof = good_proof(RSA, **overrides)
    assert header_of(proof)["alg"] == alg
    assert verify(proof, RSA)


def test_the_proof_carries_the_dpop_header_and_claims() -> None:
    proof = good_proof(P256, url=URL + "?page=2#top")
    header = header_of(proof)
    claims = jwt.decode(proof, options={"verify_signature": False})
    assert header["typ"] == "dpop+jwt"
    assert set(header["jwk"]) == {"kty", "crv", "x", "y"}
    assert claims["htm"] == METHOD
    assert claims["htu"] == URL  # without query and fragment
    assert claims["iat"] == int(NOW)
    assert claims["ath"] == access_token_hash(TOKEN)
    assert len(claims["jti"]) >= 16


def test_every_proof_has_a_fresh_jti() -> None:
    jtis = {jwt.decode(good_proof(), options={"verify_signature": False})["jti"] for _ in range(5)}
    assert len(jtis) == 5


def test_the_url_matches_ignoring_query_fragment_and_equivalent_spellings() -> None:
    proof = good_proof(url="HTTPS://Resource.Example:443/v1/%74hings")
    assert verify(proof, url=URL + "?cursor=abc#frag")


def test_a_proof_without_ath_verifies_when_no_access_token_is_given() -> None:
    assert verify(good_proof(access_token=None), access_token=None)


def test_iat_exactly_max_age_seconds_old_still_verifies() -> None:
    assert verify(good_proof(now=NOW - 60), max_age_seconds=60)


# --- refusals ----------------------------------------------------------------------------


def test_a_proof_signed_by_another_key_is_refused() -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    reason = refused(good_proof(other), key=ED25519)
    assert "signed by a key other than the one the access token is bound to" in reason


def test_a_wrong_method_is_refused() -> None:
    assert "proof htm 'POST' does not match the request method 'DELETE'" in refused(
        good_proof(), method="DELETE"
    )


def test_a_method_in_other_case_is_refused_since_methods_are_case_sensitive() -> None:
    assert "does not match the request method" in refused(good_proof(method="post"))


@pytest.mark.parametrize(
    "url",
    [
        "https://resource.example/v1/other",
        "http://resource.example/v1/things",
        "https://resource.example:8443/v1/things",
        "https://evil.example/v1/things",
    ],
)
def test_a_wrong_url_is_refused(url: str) -> None:
    assert "does not match the request URL" in refused(good_proof(), url=url)


def test_a_proof_whose_htu_is_not_a_url_is_refused() -> None:
    proof = proof_with(ED25519, "EdDSA", htu="/v1/things")
    assert "proof htu is not an absolute http(s) URL" in refused(proof)


def test_a_stale_proof_is_refused() -> None:
    reason = refused(good_proof(now=NOW - 61), max_age_seconds=60)
    assert "proof is expired: issued 61s ago, more than 60s" in reason


def test_a_proof_from_the_future_is_refused() -> None:
    reason = refused(good_proof(now=NOW + 120), max_age_seconds=60)
    assert "proof iat is 120s in the future, more than 60s" in reason


@pytest.mark.parametrize("iat", [None, "1800000000", True, float("nan"), 10**400])
def test_a_proof_without_a_numeric_iat_is_refused(iat: object) -> None:
    proof = proof_with(ED25519, "EdDSA", iat=iat)
    assert "proof has no iat claim" in refused(proof)


def test_an_ath_for_another_token_is_refused() -> None:
    reason = refused(good_proof(access_token="another-token"))
    assert "proof ath does not match the presented access token" in reason


def test_a_proof_without_ath_is_refused_when_an_access_token_is_presented() -> None:
    reason = refused(good_proof(access_token=None))
    assert "proof has no ath claim for the presented access token" in reason


def test_a_replayed_jti_is_refused() -> None:
    seen: set[str] = set()
    proof = good_proof()
    verify(proof, seen_jtis=seen)
    assert len(seen) == 1
    assert "proof jti was already used: a replayed proof" in refused(proof, seen_jtis=seen)


def test_a_refused_proof_does_not_use_up_its_jti() -> None:
    seen: set[str] = set()
    refused(good_proof(), method="GET", seen_jtis=seen)
    assert seen == set()


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "workload"},
        {"sub": "workload", "cnf": {}},
        {"sub": "workload", "cnf": {"jkt": ""}},
        {"sub": "workload", "cnf": "jkt"},
        {"sub": "workload", "cnf": {"x5t#S256": "abc"}},
    ],
)
def test_a_token_without_cnf_jkt_is_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(ProofOfPossessionError, match="access token is not bound to a key"):
        verify_proof_of_possession(claims, good_proof(), method=METHOD, url=URL, now=NOW)


def test_a_proof_whose_header_jwk_has_private_members_is_refused() -> None:
    jwk = header_of(good_proof())["jwk"]
    leaked = {**jwk, "d": b64(b"\x01" * 32)}
    proof = proof_with(ED25519, "EdDSA", header={"jwk": leaked})
    assert "proof header jwk: contains private key member(s) d" in refused(proof)


def test_a_proof_without_a_header_jwk_is_refused() -> None:
    proof = proof_with(ED25519, "EdDSA", header={"jwk": None})
    assert "proof header has no jwk" in refused(proof)


def test_an_unsigned_alg_none_proof_is_refused() -> None:
    header = {**header_of(good_proof()), "alg": "none"}
    body = jwt.decode(good_proof(), options={"verify_signature": False})
    parts = [b64(json.dumps(part).encode()) for part in (header, body)]
    proof = ".".join([*parts, ""])
    assert "proof alg 'none' is refused: a proof must be signed" in refused(proof)


def test_an_hmac_proof_keyed_with_the_public_key_is_refused() -> None:
    jwk = header_of(good_proof())["jwk"]
    body = jwt.decode(good_proof(), options={"verify_signature": False})
    secret = json.dumps(jwk).encode() * 2
    proof = jwt.encode(body, secret, algorithm="HS256", headers={"typ": "dpop+jwt", "jwk": jwk})
    assert "proof alg 'HS256' is refused: HMAC is symmetric" in refused(proof)


def test_an_alg_that_does_not_fit_the_header_jwk_is_refused() -> None:
    ed25519_jwk = header_of(good_proof())["jwk"]
    proof = proof_with(P256, "ES256", header={"jwk": ed25519_jwk})
    assert "proof alg 'ES256' does not fit its jwk; expected one of ['EdDSA']" in refused(proof)


def test_an_alg_that_differs_from_the_jwk_alg_member_is_refused() -> None:
    jwk = {**header_of(good_proof(RSA))["jwk"], "alg": "RS256"}
    proof = proof_with(RSA, "PS256", header={"jwk": jwk})
    assert "proof alg 'PS256' differs from its jwk alg" in refused(proof, key=RSA)


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", None])
def test_a_proof_of_another_type_is_refused(typ: str | None) -> None:
    proof = proof_with(ED25519, "EdDSA", header={"typ": typ or ""})
    assert "expected 'dpop+jwt'" in refused(proof)


@pytest.mark.parametrize(
    ("extension", "reason"),
    [
        ({"crit": ["exp"], "exp": 1}, "Unsupported critical extension: exp"),
        ({"crit": ["b64"], "b64": False}, "Payload segment must be empty"),
        ({"crit": ["b64"], "b64": True}, "proof header may not carry crit, b64"),
    ],
)
def test_a_proof_with_critical_extensions_is_refused(
    extension: dict[str, Any], reason: str
) -> None:
    # Refused on the header alone, so the signature need not be valid.
    header = {**header_of(good_proof()), **extension}
    body = jwt.decode(good_proof(), options={"verify_signature": False})
    proof = ".".join([b64(json.dumps(part).encode()) for part in (header, body)] + ["AAAA"])
    assert reason in refused(proof)


def test_a_tampered_proof_is_refused() -> None:
    header, _, signature = good_proof().split(".")
    forged = jwt.decode(good_proof(), options={"verify_signature": False}) | {"htm": "DELETE"}
    proof = f"{header}.{b64(json.dumps(forged).encode())}.{signature}"
    assert "proof signature does not verify with its jwk" in refused(proof)


@pytest.mark.parametrize("claim", ["jti", "htm", "htu"])
def test_a_proof_missing_a_required_claim_is_refused(claim: str) -> None:
    proof = proof_with(ED25519, "EdDSA", **{claim: None})
    assert f"proof has no {claim} claim" in refused(proof)


@pytest.mark.parametrize(
    ("proof", "reason"),
    [
        ("", "no DPoP proof was presented"),
        ("not-a-jwt", "proof is not a well-formed JWT"),
        ("a.b", "proof is not a well-formed JWT"),
    ],
)
def test_something_that_is_not_a_jwt_is_refused(proof: str, reason: str) -> None:
    assert reason in refused(proof)


def test_an_oversized_proof_is_refused() -> None:
    assert "larger than 8192 characters" in refused("a" * 9000)


def test_the_error_is_both_a_value_error_and_a_401_authentication_error() -> None:
    with pytest.raises(ValueError, match="replayed") as caught:
        proof = good_proof()
        verify(proof, seen_jtis={jwt.decode(proof, options={"verify_signature": False})["jti"]})
    assert isinstance(caught.value, AuthenticationError)
    assert (caught.value.status, caught.value.code) == (401, "invalid_dpop_proof")


# --- making proofs -----------------------------------------------------------------------


def test_an_rsa_key_under_2048_bits_cannot_make_a_proof() -> None:
    small = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the refusal under test
    with pytest.raises(ValueError, match="at least 2048 needed"):
        make_dpop_proof(small, method=METHOD, url=URL)


def test_an_alg_that_does_not_fit_the_key_cannot_be_asked_for() -> None:
    with pytest.raises(ValueError, match="alg 'RS256' does not fit a EC/P-256 key"):
        make_dpop_proof(P256, method=METHOD, url=URL, alg="RS256")


def test_an_unsupported_curve_cannot_make_a_proof() -> None:
    with pytest.raises(TypeError, match="secp256k1"):
        make_dpop_proof(ec.generate_private_key(ec.SECP256K1()), method=METHOD, url=URL)


@pytest.mark.parametrize("url", ["/v1/things", "ftp://resource.example/", "https:///path"])
def test_a_relative_or_non_http_url_cannot_make_a_proof(url: str) -> None:
    with pytest.raises(ValueError, match="not an absolute http"):
        make_dpop_proof(ED25519, method=METHOD, url=url)


def test_an_empty_method_cannot_make_a_proof() -> None:
    with pytest.raises(ValueError, match="method"):
        make_dpop_proof(ED25519, method="", url=URL)


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://a.example", "https://a.example/"),
        ("HTTP://A.Example:80/x?q#f", "http://a.example/x"),
        ("https://a.example:8443/%7euser/%2f", "https://a.example:8443/~user/%2F"),
        ("https://[::1]:443/p", "https://[::1]/p"),
    ],
)
def test_request_targets_are_normalised_per_rfc3986(url: str, target: str) -> None:
    assert request_target(url) == target
