"""Verify caller identity JWTs against trusted issuers (RFC 8725 rules).

The algorithm comes from the issuer's key, never from the token header; ``none``, HMAC and
key-carrying headers (``jku``, ``x5u``, ``jwk``, ``x5c``) are refused; keys are looked up only
in the configured key sets, so no token can make the broker fetch anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from grantline.domain.errors import AuthenticationError, ConfigError
from grantline.domain.models import Identity
from grantline.identity.issuers import TrustedIssuer, VerificationKey

MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
_ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt"})
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "aud"]


class IdentityVerifier:
    """Turns a bearer token into an :class:`Identity`, or raises AuthenticationError."""

    def __init__(self, issuers: Sequence[TrustedIssuer]) -> None:
        if not issuers:
            raise ConfigError("no trusted issuer is configured: no caller could authenticate")
        self._issuers = {issuer.issuer: issuer for issuer in issuers}

    def verify(self, token: str) -> Identity:
        """Verify signature, issuer, audience and times.

        Raises:
            AuthenticationError: for any token that does not verify, with the reason.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError(f"identity token is larger than {MAX_TOKEN_BYTES} bytes")
        header = _header(token)
        issuer = self._issuer_of(token)
        key = _key_for(issuer, header)
        claims = _decode(token, issuer, key)
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
        raise AuthenticationError(f"keys of issuer {issuer.issuer} are unavailable") from exc
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
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key.key,
            algorithms=[key.algorithm],
            audience=issuer.audience,
            issuer=issuer.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("identity token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise AuthenticationError("identity token is not valid yet") from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthenticationError("identity token is for another audience") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"identity token is invalid: {exc}") from exc
    return claims
