"""Public JSON Web Keys that a token can be bound to, and their RFC 7638 thumbprints.

Pure Python: the broker validates a caller's key here without any crypto library, and the
resource-server check in ``grantline.client.pop`` reuses the same rules for a proof's key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from grantline.domain.errors import InvalidRequestError

MAX_JWK_CHARS = 4096
MIN_RSA_BITS = 2048
MAX_RSA_EXPONENT_BYTES = 4

# Private members of every key type (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). A key that
# carries one was leaked by whoever sent it, so it is refused rather than silently trimmed.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
OPTIONAL_MEMBERS = ("alg", "use", "kid")
# RFC 7638 §3.2: the thumbprint covers exactly the required members of each key type.
REQUIRED_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}

# Short Weierstrass curves y^2 = x^3 - 3x + b (mod p) (SEC 2 / FIPS 186-5): field prime,
# coefficient b and coordinate length in bytes (RFC 7518 §6.2.1.2: always full length).
_EC_CURVES: Mapping[str, tuple[int, int, int]] = {
    "P-256": (
        2**256 - 2**224 + 2**192 + 2**96 - 1,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        32,
    ),
    "P-384": (
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        int(
            "B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE814112"
            "0314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF",
            16,
        ),
        48,
    ),
    "P-521": (
        2**521 - 1,
        int(
            "0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF1"
            "09E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00",
            16,
        ),
        66,
    ),
}
_ED25519_KEY_BYTES = 32

# The algorithms a bound key may sign proofs with, by key type and curve.
SIGNING_ALGORITHMS: Mapping[tuple[str, str], frozenset[str]] = {
    ("OKP", "Ed25519"): frozenset({"EdDSA"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("RSA", ""): frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
}

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def public_jwk(value: Any, *, field: str = "public_key") -> dict[str, str]:
    """Validate a caller-supplied public JWK and return only its public members.

    Accepted: OKP Ed25519, EC P-256/P-384/P-521 (a point on the curve), RSA of at least 2048
    bits. ``alg``, ``use`` and ``kid`` pass through when they are strings; other members
    (``key_ops``, ``ext``, ``x5c``, ...) are dropped. ``field`` names the value in messages.

    Raises:
        InvalidRequestError: saying what is wrong, prefixed ``"<field>: "``.
    """
    try:
        return _public_members(value)
    except _RefusedError as exc:
        raise InvalidRequestError(f"{field}: {exc}") from None


def thumbprint(jwk: Mapping[str, str]) -> str:
    """The RFC 7638 SHA-256 thumbprint of ``jwk``, base64url without padding.

    Only the required members count, so ``alg``/``use``/``kid`` never change it. Pass a key
    that :func:`public_jwk` returned; its members are already canonical.

    Raises:
        InvalidRequestError: for an unknown ``kty`` or a missing required member.
    """
    required = REQUIRED_MEMBERS.get(jwk.get("kty", ""))
    if required is None:
        raise InvalidRequestError(f"public_key: no thumbprint for kty {jwk.get('kty')!r}")
    missing = [name for name in required if not isinstance(jwk.get(name), str)]
    if missing:
        raise InvalidRequestError(f"public_key: missing member(s) {', '.join(missing)}")
    members = {name: jwk[name] for name in required}
    # RFC 7638 §3.3: lexicographic member order, no whitespace, UTF-8.
    text = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _RefusedError(InvalidRequestError):
    """A refusal without its field prefix; never escapes this module."""


def _public_members(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _RefusedError(f"must be a JWK (a JSON object), not {type(value).__name__}")
    if not all(isinstance(name, str) for name in value):
        raise _RefusedError("member names must be strings")
    if _json_length(value) > MAX_JWK_CHARS:
        raise _RefusedError(f"is larger than {MAX_JWK_CHARS} characters")
    private = sorted(PRIVATE_MEMBERS.intersection(value))
    if private:
        raise _RefusedError(
            f"contains private key member(s) {', '.join(private)}; send only the public key"
        )
    kty = _member(value, "kty")
    if kty == "oct":
        raise _RefusedError("kty 'oct' is a shared secret and cannot be bound; use OKP, EC or RSA")
    if kty == "OKP":
        members = _okp_members(value)
    elif kty == "EC":
        members = _ec_members(value)
    elif kty == "RSA":
        members = _rsa_members(value)
    else:
        raise _RefusedError(f"unknown kty {kty!r}; expected OKP, EC or RSA")
    members.update(_optional_members(value, kty, members.get("crv", "")))
    return members


def _json_length(value: dict[str, Any]) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":"), default=repr))
    except (TypeError, ValueError, RecursionError):
        # Not representable as JSON (cycles, absurd nesting): treat as too large.
        return MAX_JWK_CHARS + 1


def _member(jwk: Mapping[str, Any], name: str) -> str:
    if name not in jwk:
        raise _RefusedError(f"missing member {name!r}")
    member = jwk[name]
    if not isinstance(member, str):
        raise _RefusedError(f"member {name!r} must be a string, not {type(member).__name__}")
    if not member:
        raise _RefusedError(f"member {name!r} is empty")
    return member


def _base64url(jwk: Mapping[str, Any], name: str) -> bytes:
    """Decode a base64url member, refusing padding, other alphabets and non-canonical text.

    Canonical text matters: the thumbprint hashes the text, so one key must have one spelling.
    """
    text = _member(jwk, name)
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise _RefusedError(f"member {name!r} is not base64url without padding")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _RefusedError(f"member {name!r} is not base64url without padding") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise _RefusedError(f"member {name!r} is not canonical base64url (stray trailing bits)")
    return raw


def _okp_members(jwk: Mapping[str, Any]) -> dict[str, str]:
    crv = _member(jwk, "crv")
    if crv != "Ed25519":
        raise _RefusedError(f"unsupported OKP crv {crv!r}; only Ed25519 is accepted")
    x = _base64url(jwk, "x")
    if len(x) != _ED25519_KEY_BYTES:
        raise _RefusedError(f"Ed25519 x must be {_ED25519_KEY_BYTES} bytes, not {len(x)}")
    return {"kty": "OKP", "crv": crv, "x": jwk["x"]}


def _ec_members(jwk: Mapping[str, Any]) -> dict[str, str]:
    crv = _member(jwk, "crv")
    if crv not in _EC_CURVES:
        raise _RefusedError(f"unsupported EC crv {crv!r}; expected P-256, P-384 or P-521")
    prime, b, size = _EC_CURVES[crv]
    coordinates = []
    for name in ("x", "y"):
        raw = _base64url(jwk, name)
        if len(raw) != size:
            raise _RefusedError(f"{crv} {name} must be {size} bytes, not {len(raw)}")
        coordinates.append(int.from_bytes(raw, "big"))
    x, y = coordinates
    if x >= prime or y >= prime or (y * y - (x * x * x - 3 * x + b)) % prime != 0:
        raise _RefusedError(f"(x, y) is not a point on {crv}")
    return {"kty": "EC", "crv": crv, "x": jwk["x"], "y": jwk["y"]}


def _rsa_members(jwk: Mapping[str, Any]) -> dict[str, str]:
    n_raw, e_raw = _base64url(jwk, "n"), _base64url(jwk, "e")
    # RFC 7518 §6.3.1: minimum number of octets, so no leading zero byte.
    if n_raw[0] == 0 or e_raw[0] == 0:
        raise _RefusedError("RSA n and e must not start with a zero byte")
    n, e = int.from_bytes(n_raw, "big"), int.from_bytes(e_raw, "big")
    if n.bit_length() < MIN_RSA_BITS:
        raise _RefusedError(f"RSA n has {n.bit_length()} bits; at least {MIN_RSA_BITS} needed")
    if n % 2 == 0:
        raise _RefusedError("RSA n is even, so it is not an RSA modulus")
    # A huge public exponent makes every signature check as slow as a private-key operation.
    if len(e_raw) > MAX_RSA_EXPONENT_BYTES or e < 3 or e % 2 == 0:
        raise _RefusedError("RSA e must be an odd number from 3 to 2**32 - 1")
    return {"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}


def _optional_members(jwk: Mapping[str, Any], kty: str, crv: str) -> dict[str, str]:
    members = {name: _member(jwk, name) for name in OPTIONAL_MEMBERS if name in jwk}
    if "use" in members and members["use"] != "sig":
        raise _RefusedError(f"use {members['use']!r} does not fit a signing key; expected 'sig'")
    allowed = SIGNING_ALGORITHMS[(kty, crv)]
    if "alg" in members and members["alg"] not in allowed:
        raise _RefusedError(
            f"alg {members['alg']!r} does not fit this key; expected one of {sorted(allowed)}"
        )
    return members
