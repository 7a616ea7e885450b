"""Verify caller identity JWTs against trusted issuers (RFC 8725 rules).

The algorithm comes from the issuer's key, never from the token header; ``none``, HMAC and
key-carrying headers (``jku``, ``x5u``, ``jwk``, ``x5c``) are refused; keys are looked up only
in the configured key sets, so no token can make the broker fetch anything.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from grantline.domain.clock import Clock, SystemClock
from grantline.domain.errors import AuthenticationError, ConfigError, DependencyUnavailableError
from grantline.domain.models import Identity
from grantline.identity.issuers import TrustedIssuer, VerificationKey

MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30
CACHE_SECONDS = 60.0
MAX_TIME_VALUE = 10**11  # seconds since 1970: past the year 5000
CACHE_ENTRIES = 10_000
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
_ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt"})
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "aud"]


class IdentityVerifier:
    """Turns a bearer token into an :class:`Identity`, or raises AuthenticationError.

    Workloads present the same identity token on many calls, so a token that verified is
    remembered (by its SHA-256) until its ``exp``, for at most ``CACHE_SECONDS``: a signature
    check costs more than the rest of a grant's authentication, and the bounded lifetime
    lets a removed key or issuer take effect within that time.
    """

    def __init__(self, issuers: Sequence[TrustedIssuer], clock: Clock | None = None) -> None:
        if not issuers:
            raise ConfigError("no trusted issuer is configured: no caller could authenticate")
        self._issuers = {issuer.issuer: issuer for issuer in issuers}
        self._clock = clock or SystemClock()
        self._verified: OrderedDict[bytes, tuple[Identity, float]] = OrderedDict()

    def verify(self, token: str) -> Identity:
        """Verify signature, issuer, audience and times.

        Raises:
            AuthenticationError: for any token that does not verify, with the reason.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError(f"identity token is larger than {MAX_TOKEN_BYTES} bytes")
        now = self._clock.now().timestamp()
        key = hashlib.sha256(token.encode()).digest()
        remembered = self._verified.get(key)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        identity = self._verify_uncached(token, now)
        exp = identity.claims["exp"]
        until = min(float(exp) + LEEWAY_SECONDS, now + CACHE_SECONDS)
        self._verified[key] = (identity, until)
        if len(self._verified) > CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return identity

    def _verify_uncached(self, token: str, now: float) -> Identity:
        header = _header(token)
        issuer = self._issuer_of(token)
        key = _key_for(issuer, header)
        claims = _decode(token, issuer, key)
        _check_times(claims, now)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("identity token has no subject")
        return Identity(subject=subject, issuer=issuer.issuer, claims=claims)

    def _issuer_of(self, token: str) -> TrustedIssuer:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"identity token is malformed: {exc}") from exc
        name = unverified.get("iss")
        issuer = self._issuers.get(name) if isinstance(name, str) else None
        if issuer is None:
            raise AuthenticationError("identity token is from an untrusted issuer")
        return issuer


def _header(token: str) -> Mapping[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"identity token is malformed: {exc}") from exc
    present = _FORBIDDEN_HEADERS & set(header)
    if present:
        raise AuthenticationError(
            f"identity token header carries refused fields: {sorted(present)}"
        )
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP):
        raise AuthenticationError("identity token has an unexpected typ")
    return header


def _key_for(issuer: TrustedIssuer, header: Mapping[str, Any]) -> VerificationKey:
    try:
        keys = issuer.keys()
    except ConfigError as exc:
        raise DependencyUnavailableError(
            f"keys of issuer {issuer.issuer} are unavailable", code="issuer_keys_unavailable"
        ) from exc
    kid = header.get("kid")
    if kid is None and len(keys) == 1:
        key = next(iter(keys.values()))
    elif isinstance(kid, str) and kid in keys:
        key = keys[kid]
    else:
        raise AuthenticationError("identity token names an unknown key")
    if header.get("alg") != key.algorithm:
        shown = str(header.get("alg"))[:20]
        raise AuthenticationError(f"identity token algorithm {shown!r} is not {key.algorithm}")
    return key


def _decode(token: str, issuer: TrustedIssuer, key: VerificationKey) -> dict[str, Any]:
    # Times are checked against our clock in _check_times, so tests can move it.
    options = {
        "require": _REQUIRED_CLAIMS,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
    }
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key.key,
            algorithms=[key.algorithm],
            audience=issuer.audience,
            issuer=issuer.issuer,
            options=options,  # type: ignore[arg-type]
        )
    except jwt.InvalidAudienceError as exc:
        raise AuthenticationError("identity token is for another audience") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"identity token is invalid: {exc}") from exc
    return claims


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    raw = [claims.get("exp"), claims.get("nbf", 0), claims.get("iat", 0)]
    if not all(_is_time(value) for value in raw):
        raise AuthenticationError("identity token has a malformed exp, nbf or iat")
    exp, nbf, iat = (float(value) for value in raw)
    if now >= exp + LEEWAY_SECONDS:
        raise AuthenticationError("identity token has expired")
    if now + LEEWAY_SECONDS < max(nbf, iat):
        raise AuthenticationError("identity token is not valid yet")


def _is_time(value: object) -> bool:
    # Bounded so that float() cannot overflow on a huge integer from a trusted issuer.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -MAX_TIME_VALUE < value < MAX_TIME_VALUE
    )
