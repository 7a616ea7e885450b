"""Public JWKs a token can be bound to: what is accepted, every refusal, RFC 7638 thumbprints."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from grantline.domain.errors import InvalidRequestError
from grantline.domain.jwk import public_jwk, thumbprint

# RFC 7638 §3.1.
RFC7638_RSA = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
# RFC 8037 Appendix A.1 (the key) and A.3 (its thumbprint).
RFC8037_ED25519 = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_PRIVATE_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def ec_jwk(curve: ec.EllipticCurve, crv: str) -> dict[str, str]:
    numbers = ec.generate_private_key(curve).public_key().public_numbers()
    size = (curve.key_size + 7) // 8
    return {
        "kty": "EC",
        "crv": crv,
        "x": b64(numbers.x.to_bytes(size, "big")),
        "y": b64(numbers.y.to_bytes(size, "big")),
    }


def rsa_jwk(bits: int = 2048) -> dict[str, str]:
    numbers = rsa.generate_private_key(65537, bits).public_key().public_numbers()
    return {"kty": "RSA", "n": b64(numbers.n.to_bytes(bits // 8, "big")), "e": "AQAB"}


P256 = ec_jwk(ec.SECP256R1(), "P-256")


def refusal(value: Any) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        public_jwk(value)
    message = caught.value.message
    assert message.startswith("public_key: ")
    assert caught.value.status == 422
    return message


# --- RFC vectors -------------------------------------------------------------------------


def test_rfc7638_rsa_example_has_the_published_thumbprint() -> None:
    assert thumbprint(public_jwk(RFC7638_RSA)) == RFC7638_THUMBPRINT


def test_rfc8037_ed25519_example_has_the_published_thumbprint() -> None:
    assert thumbprint(public_jwk(RFC8037_ED25519)) == RFC8037_THUMBPRINT


def test_thumbprint_ignores_optional_members_and_member_order() -> None:
    reordered = {"kid": "other", "e": "AQAB", "n": RFC7638_RSA["n"], "use": "sig", "kty": "RSA"}
    assert thumbprint(reordered) == RFC7638_THUMBPRINT


def test_thumbprint_of_an_unknown_key_type_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="no thumbprint for kty 'oct'"):
        thumbprint({"kty": "oct", "k": "c2VjcmV0"})


def test_thumbprint_without_a_required_member_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="missing member"):
        thumbprint({"kty": "EC", "crv": "P-256", "x": P256["x"]})


# --- accepted keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "crv"),
    [(ec.SECP256R1(), "P-256"), (ec.SECP384R1(), "P-384"), (ec.SECP521R1(), "P-521")],
)
def test_ec_keys_on_each_supported_curve_are_accepted(curve: ec.EllipticCurve, crv: str) -> None:
    jwk = ec_jwk(curve, crv)
    assert public_jwk(jwk) == jwk


def test_a_generated_ed25519_key_is_accepted() -> None:
    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    assert public_jwk(jwk) == jwk


def test_a_4096_bit_rsa_key_is_accepted() -> None:
    jwk = rsa_jwk(4096)
    assert public_jwk(jwk) == jwk


def test_alg_use_and_kid_pass_through_and_other_members_are_dropped() -> None:
    webcrypto_export: dict[str, Any] = {**P256, "alg": "ES256", "use": "sig", "kid": "k1"}
    webcrypto_export |= {"ext": True, "key_ops": ["verify"]}
    assert public_jwk(webcrypto_export) == {**P256, "alg": "ES256", "use": "sig", "kid": "k1"}


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "a JWK", ["kty", "OKP"], 7])
def test_a_value_that_is_not_an_object_is_refused(value: object) -> None:
    assert "must be a JWK (a JSON object)" in refusal(value)


def test_member_names_that_are_not_strings_are_refused() -> None:
    assert "member names must be strings" in refusal({**RFC8037_ED25519, 1: "x"})


def test_an_oversized_jwk_is_refused_before_anything_else() -> None:
    oversized = {**RFC8037_ED25519, "d": "x", "x5c": ["A" * 5000]}
    assert "larger than 4096 characters" in refusal(oversized)


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_each_private_member_is_refused(member: str) -> None:
    message = refusal({**rsa_jwk(), member: "AQAB"})
    assert f"contains private key member(s) {member}; send only the public key" in message


def test_the_rfc8037_private_key_is_refused_not_trimmed() -> None:
    assert "private key member(s) d" in refusal({**RFC8037_ED25519, "d": RFC8037_PRIVATE_D})


def test_a_symmetric_oct_key_is_refused() -> None:
    assert "kty 'oct' is a shared secret" in refusal({"kty": "oct", "alg": "HS256"})


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"crv": "Ed25519", "x": RFC8037_ED25519["x"]}, "missing member 'kty'"),
        ({**RFC8037_ED25519, "kty": 1}, "member 'kty' must be a string, not int"),
        ({**RFC8037_ED25519, "kty": ""}, "member 'kty' is empty"),
        ({**RFC8037_ED25519, "kty": "DSA"}, "unknown kty 'DSA'; expected OKP, EC or RSA"),
    ],
)
def test_a_missing_or_unknown_kty_is_refused(jwk: dict[str, Any], reason: str) -> None:
    assert reason in refusal(jwk)


@pytest.mark.parametrize("crv", ["Ed448", "X25519", "X448"])
def test_okp_curves_other_than_ed25519_are_refused(crv: str) -> None:
    assert f"unsupported OKP crv {crv!r}; only Ed25519" in refusal({**RFC8037_ED25519, "crv": crv})


def test_an_ed25519_key_of_the_wrong_length_is_refused() -> None:
    short = {**RFC8037_ED25519, "x": b64(b"\x01" * 31)}
    assert "Ed25519 x must be 32 bytes, not 31" in refusal(short)


def test_an_okp_key_without_x_is_refused() -> None:
    assert "missing member 'x'" in refusal({"kty": "OKP", "crv": "Ed25519"})


@pytest.mark.parametrize(
    ("x", "reason"),
    [
        (RFC8037_ED25519["x"] + "=", "not base64url without padding"),
        ("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo", "not base64url without padding"),
        ("11qYAYKxCrfVS+7TyWQHOg7hcvPapiMlrwIaaPcHURo", "not base64url without padding"),
        ("11qYA YKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR", "not base64url without padding"),
        ("AAAAA", "not base64url without padding"),  # a length no encoder produces
        ("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp", "stray trailing bits"),
        ("", "member 'x' is empty"),
        (None, "member 'x' must be a string, not NoneType"),
    ],
)
def test_bad_base64url_is_refused(x: object, reason: str) -> None:
    assert reason in refusal({**RFC8037_ED25519, "x": x})


@pytest.mark.parametrize("crv", ["P-192", "P-256K", "secp256k1", "p-256"])
def test_unsupported_ec_curves_are_refused(crv: str) -> None:
    message = refusal({**P256, "crv": crv})
    assert f"unsupported EC crv {crv!r}; expected P-256, P-384 or P-521" in message


@pytest.mark.parametrize("member", ["x", "y"])
def test_ec_coordinates_of_the_wrong_length_are_refused(member: str) -> None:
    # A P-384-sized coordinate presented as P-256.
    message = refusal({**P256, member: b64(b"\x01" * 48)})
    assert f"P-256 {member} must be 32 bytes, not 48" in message


def test_an_ec_key_without_y_is_refused() -> None:
    assert "missing member 'y'" in refusal({k: v for k, v in P256.items() if k != "y"})


def test_an_ec_point_off_the_curve_is_refused() -> None:
    y = int.from_bytes(base64.urlsafe_b64decode(P256["y"] + "=="), "big") ^ 1
    message = refusal({**P256, "y": b64(y.to_bytes(32, "big"))})
    assert "(x, y) is not a point on P-256" in message


def test_ec_coordinates_beyond_the_field_are_refused() -> None:
    assert "is not a point on P-256" in refusal({**P256, "x": b64(b"\xff" * 32)})


def test_an_rsa_key_under_2048_bits_is_refused() -> None:
    assert "RSA n has 1024 bits; at least 2048 needed" in refusal(rsa_jwk(1024))


def test_an_rsa_modulus_with_a_leading_zero_byte_is_refused() -> None:
    jwk = rsa_jwk()
    padded = b"\x00" + base64.urlsafe_b64decode(jwk["n"] + "==")
    assert "must not start with a zero byte" in refusal({**jwk, "n": b64(padded)})


def test_an_even_rsa_modulus_is_refused() -> None:
    assert "RSA n is even" in refusal({**rsa_jwk(), "n": b64(b"\x80" + b"\x00" * 255)})


@pytest.mark.parametrize("exponent", [b"\x01", b"\x01\x00\x00", b"\x01\x00\x00\x00\x01"])
def test_unusable_rsa_exponents_are_refused(exponent: bytes) -> None:
    message = refusal({**rsa_jwk(), "e": b64(exponent)})
    assert "RSA e must be an odd number from 3 to 2**32 - 1" in message


def test_an_rsa_key_without_e_is_refused() -> None:
    jwk = rsa_jwk()
    del jwk["e"]
    assert "missing member 'e'" in refusal(jwk)


@pytest.mark.parametrize("member", ["alg", "use", "kid"])
def test_optional_members_that_are_not_strings_are_refused(member: str) -> None:
    assert f"member {member!r} must be a string, not list" in refusal({**P256, member: ["x"]})


@pytest.mark.parametrize("alg", ["HS256", "ES384", "none", "RS256"])
def test_an_alg_that_does_not_fit_the_key_is_refused(alg: str) -> None:
    message = refusal({**P256, "alg": alg})
    assert f"alg {alg!r} does not fit this key; expected one of ['ES256']" in message


def test_an_encryption_key_is_refused() -> None:
    assert "use 'enc' does not fit a signing key" in refusal({**P256, "use": "enc"})


def test_the_field_name_prefixes_the_message_when_given() -> None:
    with pytest.raises(InvalidRequestError, match=r"^proof header jwk: unknown kty"):
        public_jwk({"kty": "XYZ"}, field="proof header jwk")
