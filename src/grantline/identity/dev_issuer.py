"""The dev identity issuer: a local key under GRANTLINE_HOME that mints caller tokens for trying
Grantline out. Enabled by default in the embedded set-up; turn it off in production."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grantline.evidence.jws import encode_jwt
from grantline.evidence.signer import LocalEd25519Signer
from grantline.identity.issuers import TrustedIssuer

DEV_ISSUER = "grantline-dev"
DEV_AUDIENCE = "grantline"


class DevIssuer:
    def __init__(self, key_file: Path, audience: str = DEV_AUDIENCE) -> None:
        self._signer = LocalEd25519Signer.load_or_create(key_file)
        self.audience = audience

    def mint(
        self, subject: str, *, ttl_seconds: int = 3600, claims: Mapping[str, Any] | None = None
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = dict(claims or {})
        payload.update(
            {
                "iss": DEV_ISSUER,
                "sub": subject,
                "aud": self.audience,
                "iat": now,
                "nbf": now,
                "exp": now + ttl_seconds,
            }
        )
        return encode_jwt(payload, self._signer)

    def trusted_issuer(self) -> TrustedIssuer:
        return TrustedIssuer(
            issuer=DEV_ISSUER,
            audience=self.audience,
            algorithms=frozenset({"EdDSA"}),
            jwks={"keys": [self._signer.public_jwk()]},
        )
