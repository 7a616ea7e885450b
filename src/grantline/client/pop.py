"""Proof of possession for Grantline tokens bound with ``cnf.jkt``: DPoP proofs (RFC 9449).

A caller holding the bound private key signs a fresh proof per request with
:func:`make_dpop_proof`; a resource server checks it with :func:`verify_proof_of_possession`.
Only ``grantline.domain`` (pure Python) is imported from Grantline, so this ships in the client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping, MutableSet
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from grantline.domain.errors import AuthenticationError, InvalidRequestError
from grantline.domain.jwk import SIGNING_ALGORITHMS, public_jwk, thumbprint

DPOP_TYP = "dpop+jwt"
MAX_PROOF_CHARS = 8192
DEFAULT_RSA_ALG = "PS256"

DpopPrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
DpopPublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_CURVES: Mapping[str, tuple[str, ec.EllipticCurve]] = {
    "secp256r1": ("P-256", ec.SECP256R1()),
    "secp384r1": ("P-384", ec.SECP384R1()),
    "secp521r1": ("P-521", ec.SECP521R1()),
}
_CURVE_BY_CRV = {crv: curve for crv, curve in _CURVES.values()}
_DEFAULT_ALG: Mapping[tuple[str, str], str] = {
    ("OKP", "Ed25519"): "EdDSA",
    ("EC", "P-256"): "ES256",
    ("EC", "P-384"): "ES384",
    ("EC", "P-521"): "ES512",
    ("RSA", ""): DEFAULT_RSA_ALG,
}
# A proof may not ask the verifier to understand extensions (RFC 7515 §4.1.11) or to detach
# its payload (RFC 7797): neither belongs in a DPoP proof.
_FORBIDDEN_HEADERS = ("crit", "b64")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class ProofOfPossessionError(AuthenticationError, ValueError):
    """A DPoP proof is missing, malformed, stale, replayed, or not made with the bound key.

    An :class:`~grantline.domain.errors.AuthenticationError` (HTTP 401, code
    ``invalid_dpop_proof``) and also a ``ValueError``, for callers outside Grantline.
    """

    code = "invalid_dpop_proof"


def make_dpop_proof(
    private_key: DpopPrivateKey,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    now: float | None = None,
    alg: str | None = None,
) -> str:
    """Sign a DPoP proof JWT (RFC 9449 §4.2) for one request.

    ``alg`` defaults to EdDSA for Ed25519, ES256/ES384/ES512 for P-256/P-384/P-521 and PS256
    for RSA (``RS256`` and the other RS/PS variants may be asked for). ``htu`` is ``url``
    without query and fragment; ``ath`` is added when ``access_token`` is given.

    Raises:
        TypeError: for a key type other than Ed25519, EC P-256/384/521 or RSA.
        ValueError: for a key a verifier would refuse (RSA under 2048 bits), an empty method,
            a URL that is not absolute http(s), or an ``alg`` that does not fit the key.
    """
    try:
        jwk = public_jwk(public_jwk_of(private_key), field="private_key")
    except InvalidRequestError as exc:  # an RSA key under 2048 bits, say
        raise ValueError(exc.message) from exc
    key_kind = (jwk["kty"], jwk.get("crv", ""))
    chosen = alg or _DEFAULT_ALG[key_kind]
    if chosen not in SIGNING_ALGORITHMS[key_kind]:
        raise ValueError(f"alg {chosen!r} does not fit a {'/'.join(filter(None, key_kind))} key")
    if not method:
        raise ValueError("method must be the HTTP method of the request, such as 'GET'")
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": request_target(url),
        "iat": int(time.time() if now is None else now),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    headers = {"typ": DPOP_TYP, "jwk": jwk}
    return jwt.encode(claims, private_key, algorithm=chosen, headers=headers)


def verify_proof_of_possession(
    access_token_claims: Mapping[str, Any],
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    max_age_seconds: int = 60,
    now: float | None = None,
    seen_jtis: MutableSet[str] | None = None,
) -> str:
    """Check a DPoP proof (RFC 9449 §4.3) against a token bound with ``cnf.jkt``.

    ``access_token_claims`` must come from a token the caller has ALREADY verified
    (signature against the Grantline JWKS, ``aud``, ``exp``; or introspection): this
    function only checks that the request was signed by the key that token is bound to.

    Checked: ``typ`` is ``dpop+jwt``; ``alg`` is an asymmetric algorithm fitting the header
    ``jwk``, which holds only public members; the signature verifies with that ``jwk``;
    ``htm`` equals ``method``; ``htu`` equals ``url`` ignoring query and fragment (after
    RFC 3986 normalisation); ``iat`` is within ``max_age_seconds`` of ``now`` either way;
    ``ath`` is the hash of ``access_token`` when that is given (a resource server should
    always give it); the RFC 7638 thumbprint of the ``jwk`` equals ``cnf.jkt``; and, when
    ``seen_jtis`` is given, ``jti`` is not in it (it is added once everything else passed;
    the caller bounds the set: a ``jti`` may be forgotten ``2 * max_age_seconds`` after it
    was added, since ``iat`` may lie up to ``max_age_seconds`` ahead).

    Returns:
        The thumbprint of the proof key (equal to ``cnf.jkt``).

    Raises:
        ProofOfPossessionError: with the reason the proof is refused.
        ValueError: if ``max_age_seconds`` is not positive or ``url`` is not absolute http(s).
    """
    if max_age_seconds <= 0:
        raise ValueError("max_age_seconds must be positive")
    bound_jkt = _bound_thumbprint(access_token_claims)
    header = _proof_header(proof)
    jwk, algorithm = _proof_key(header)
    claims = _signed_claims(proof, jwk, algorithm)
    _check_request(claims, method=method, url=url)
    _check_freshness(claims, max_age_seconds, time.time() if now is None else now)
    if access_token is not None:
        _check_access_token_hash(claims, access_token)
    proof_jkt = thumbprint(jwk)
    if not hmac.compare_digest(proof_jkt, bound_jkt):
        raise ProofOfPossessionError(
            "proof is signed by a key other than the one the access token is bound to"
        )
    if seen_jtis is not None:
        if claims["jti"] in seen_jtis:
            raise ProofOfPossessionError("proof jti was already used: a replayed proof")
        seen_jtis.add(claims["jti"])
    return proof_jkt


def access_token_hash(access_token: str) -> str:
    """The ``ath`` value: base64url (no padding) of SHA-256 of the token's ASCII text."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def request_target(url: str) -> str:
    """``url`` as compared in ``htu``: without query and fragment, RFC 3986 normalised.

    Scheme and host are lower-cased, the default port and needless percent-escapes are
    dropped, an empty path becomes ``/`` (RFC 3986 §6.2.2 and §6.2.3; RFC 9449 §4.3).

    Raises:
        ValueError: if ``url`` is not an absolute http or https URL.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    userinfo = parts.netloc.rpartition("@")[0]
    port = parts.port  # raises ValueError for a port that is not a number in range
    authority = (f"{userinfo}@" if userinfo else "") + host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        authority += f":{port}"
    path = _PERCENT_ESCAPE.sub(_normalise_escape, parts.path) or "/"
    return f"{scheme}://{authority}{path}"


def _normalise_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group()[1:], 16))
    return char if char in _UNRESERVED else match.group().upper()


def public_jwk_of(key: DpopPrivateKey | DpopPublicKey) -> dict[str, str]:
    """The public JWK of a key pair (given its private or its public half): what to send as
    ``public_key`` when asking for a token bound to that key.

    Raises:
        TypeError: for a key type other than Ed25519, EC P-256/384/521 or RSA.
    """
    public = key.public_key() if isinstance(key, DpopPrivateKey) else key
    if isinstance(public, Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in _CURVES:
            raise TypeError(f"EC curve {public.curve.name} is not supported")
        crv, curve = _CURVES[public.curve.name]
        size = (curve.key_size + 7) // 8
        numbers = public.public_numbers()
        x, y = numbers.x.to_bytes(size, "big"), numbers.y.to_bytes(size, "big")
        return {"kty": "EC", "crv": crv, "x": _b64(x), "y": _b64(y)}
    if isinstance(public, rsa.RSAPublicKey):
        rsa_numbers = public.public_numbers()
        n, e = _int_bytes(rsa_numbers.n), _int_bytes(rsa_numbers.e)
        return {"kty": "RSA", "n": _b64(n), "e": _b64(e)}
    raise TypeError(f"unsupported key type {type(key).__name__}")


def _bound_thumbprint(claims: Mapping[str, Any]) -> str:
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    if not isinstance(jkt, str) or not jkt:
        raise ProofOfPossessionError("access token is not bound to a key: it has no cnf.jkt")
    return jkt


def _proof_header(proof: str) -> dict[str, Any]:
    if not isinstance(proof, str) or not proof:
        raise ProofOfPossessionError("no DPoP proof was presented")
    if len(proof) > MAX_PROOF_CHARS:
        raise ProofOfPossessionError(f"proof is larger than {MAX_PROOF_CHARS} characters")
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError as exc:
        raise ProofOfPossessionError(f"proof is not a well-formed JWT: {exc}") from exc
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != DPOP_TYP:
        raise ProofOfPossessionError(f"proof typ is {typ!r}; expected {DPOP_TYP!r}")
    present = [name for name in _FORBIDDEN_HEADERS if name in header]
    if present:
        raise ProofOfPossessionError(f"proof header may not carry {', '.join(present)}")
    return header


def _proof_key(header: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """The validated header ``jwk`` and the ``alg`` it signs with.

    The algorithm must fit the key, never the other way round: ``none`` and HMAC (which
    would turn the public key into a shared secret) are refused here, before any check.
    """
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise ProofOfPossessionError("proof alg 'none' is refused: a proof must be signed")
    if algorithm.upper().startswith("HS"):
        raise ProofOfPossessionError(f"proof alg {algorithm!r} is refused: HMAC is symmetric")
    if "jwk" not in header:
        raise ProofOfPossessionError("proof header has no jwk")
    try:
        jwk = public_jwk(header["jwk"], field="proof header jwk")
    except InvalidRequestError as exc:
        raise ProofOfPossessionError(exc.message) from exc
    allowed = SIGNING_ALGORITHMS[(jwk["kty"], jwk.get("crv", ""))]
    if algorithm not in allowed:
        raise ProofOfPossessionError(
            f"proof alg {algorithm!r} does not fit its jwk; expected one of {sorted(allowed)}"
        )
    if jwk.get("alg", algorithm) != algorithm:
        raise ProofOfPossessionError(f"proof alg {algorithm!r} differs from its jwk alg")
    return jwk, algorithm


def _signed_claims(proof: str, jwk: Mapping[str, str], algorithm: str) -> dict[str, Any]:
    try:
        payload = jwt.PyJWS().decode(
            proof,
            key=_verification_key(jwk),
            algorithms=[algorithm],
            options={"verify_signature": True, "enforce_minimum_key_length": True},
        )
    except jwt.InvalidSignatureError as exc:
        raise ProofOfPossessionError("proof signature does not verify with its jwk") from exc
    except jwt.PyJWTError as exc:
        raise ProofOfPossessionError(f"proof is not a valid JWS: {exc}") from exc
    try:
        claims = json.loads(payload)
    except (ValueError, TypeError) as exc:
        raise ProofOfPossessionError("proof payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise ProofOfPossessionError("proof payload is not a JSON object")
    for name in ("jti", "htm", "htu"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise ProofOfPossessionError(f"proof has no {name} claim (a non-empty string)")
    return claims


def _verification_key(jwk: Mapping[str, str]) -> DpopPublicKey:
    try:
        if jwk["kty"] == "OKP":
            return Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
        if jwk["kty"] == "EC":
            x, y = _int(jwk["x"]), _int(jwk["y"])
            return ec.EllipticCurvePublicNumbers(x, y, _CURVE_BY_CRV[jwk["crv"]]).public_key()
        return rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
    except ValueError as exc:
        raise ProofOfPossessionError("proof jwk is not a usable public key") from exc


def _check_request(claims: Mapping[str, Any], *, method: str, url: str) -> None:
    if claims["htm"] != method:
        raise ProofOfPossessionError(
            f"proof htm {claims['htm']!r} does not match the request method {method!r}"
        )
    try:
        proof_target = request_target(claims["htu"])
    except ValueError as exc:
        raise ProofOfPossessionError("proof htu is not an absolute http(s) URL") from exc
    if proof_target != request_target(url):
        raise ProofOfPossessionError(
            f"proof htu {claims['htu']!r} does not match the request URL {url!r}"
        )


def _check_freshness(claims: Mapping[str, Any], max_age_seconds: int, now: float) -> None:
    iat = claims.get("iat")
    try:
        issued = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
    except OverflowError:
        issued = None
    if issued is None or not math.isfinite(issued):
        raise ProofOfPossessionError("proof has no iat claim (a number of seconds)")
    age = now - issued
    if age > max_age_seconds:
        raise ProofOfPossessionError(
            f"proof is expired: issued {age:.0f}s ago, more than {max_age_seconds}s"
        )
    if -age > max_age_seconds:
        raise ProofOfPossessionError(
            f"proof iat is {-age:.0f}s in the future, more than {max_age_seconds}s"
        )


def _check_access_token_hash(claims: Mapping[str, Any], access_token: str) -> None:
    ath = claims.get("ath")
    if not isinstance(ath, str):
        raise ProofOfPossessionError("proof has no ath claim for the presented access token")
    try:
        expected = access_token_hash(access_token)
    except UnicodeEncodeError as exc:
        raise ProofOfPossessionError("the presented access token is not ASCII") from exc
    if not hmac.compare_digest(ath.encode(), expected.encode()):
        raise ProofOfPossessionError("proof ath does not match the presented access token")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text: str) -> int:
    return int.from_bytes(_unb64(text), "big")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")
