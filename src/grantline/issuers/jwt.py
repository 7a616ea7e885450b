"""Short-lived JWTs signed with the broker's Ed25519 token key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import jwt

from grantline.domain.models import CredentialType, IssuedCredential, format_time
from grantline.evidence.jws import encode_jwt
from grantline.evidence.signer import Signer
from grantline.issuers.base import GrantSpec, SourceState, fingerprint


class JwtIssuer:
    """Mints JWTs locally. Revocation is enforced by introspection against the grant state."""

    credential_type = CredentialType.JWT
    external = False

    def __init__(self, signer: Signer, issuer_url: str) -> None:
        self._signer = signer
        self._issuer_url = issuer_url
        self._public_keys = {k["kid"]: jwt.PyJWK(dict(k)).key for k in signer.public_jwks()}

    def claims_of(self, token: str, *, allow_expired: bool = False) -> Mapping[str, Any] | None:
        """The claims of an unexpired JWT this broker signed, or None for anything else; with
        ``allow_expired``, of an expired one too (what it was is evidence of a late use)."""
        if len(token) > 16384:
            return None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._public_keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["EdDSA"],
                issuer=self._issuer_url,
                options={
                    "verify_aud": False,
                    "verify_exp": not allow_expired,
                    "require": ["exp", "jti"],
                },
            )
        except jwt.PyJWTError:
            return None
        return claims

    async def mint(self, spec: GrantSpec) -> IssuedCredential:
        issued_at = spec.now.replace(microsecond=0)
        expires_at = issued_at + timedelta(seconds=spec.ttl_seconds)
        token_id = str(uuid.uuid4())
        claims: dict[str, object] = {
            "iss": self._issuer_url,
            "sub": spec.subject,
            "aud": spec.target,
            "iat": int(issued_at.timestamp()),
            "nbf": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": token_id,
            "role": spec.role,
            "request_id": spec.request_id,
        }
        if spec.actor:
            claims["act"] = dict(spec.actor)
        if spec.key_thumbprint:
            claims["cnf"] = {"jkt": spec.key_thumbprint}
        if self._signer.blocking:
            token = await asyncio.to_thread(encode_jwt, claims, self._signer)
        else:
            token = encode_jwt(claims, self._signer)
        return IssuedCredential(
            type=CredentialType.JWT,
            fingerprint=fingerprint(token),
            issued_at=issued_at,
            expires_at=expires_at,
            handle={"jti": token_id, "kid": self._signer.kid},
            secret={"token": token, "expires_at": format_time(expires_at)},
        )

    async def revoke(self, handle: Mapping[str, str]) -> None:
        # Nothing to do at the source: a JWT cannot be recalled, introspection refuses it.
        return None

    async def state_at_source(self, handle: Mapping[str, str]) -> SourceState:
        return SourceState.UNTRACKED
