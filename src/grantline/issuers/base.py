"""The CredentialIssuer protocol the broker mints and revokes through."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from grantline.domain.models import CredentialType, Fingerprint, IssuedCredential, RequestId


@dataclass(frozen=True, slots=True)
class GrantSpec:
    """Everything an issuer needs to mint one credential for one allowed request."""

    request_id: RequestId
    subject: str
    role: str
    target: str
    ttl_seconds: int
    now: datetime
    actor: Mapping[str, Any] | None = None  # the RFC 8693 ``act`` claim of a delegation
    key_thumbprint: str = ""  # RFC 7638 thumbprint of the key the credential is bound to
    # The role's issuer configuration (its ``vault`` block), after any override by the decision.
    issuer_config: Mapping[str, Any] = field(default_factory=dict)


def fingerprint(secret: bytes | str) -> Fingerprint:
    """What records keep instead of a credential: the SHA-256 of its secret form."""
    data = secret.encode("utf-8") if isinstance(secret, str) else secret
    return Fingerprint("sha256:" + hashlib.sha256(data).hexdigest())


class SourceState(enum.StrEnum):
    """What the issuer itself says of a credential, for the reconciler."""

    ALIVE = "alive"
    GONE = "gone"
    UNTRACKED = "untracked"  # the issuer keeps no state (a JWT): only the log knows


class CredentialIssuer(Protocol):
    @property
    def credential_type(self) -> CredentialType: ...

    @property
    def external(self) -> bool:
        """True when minting creates state outside the broker (a Vault token, a lease).

        Such credentials get their intent recorded before minting, so a crash in between
        leaves a trace the reconciler can resolve.
        """
        ...

    async def mint(self, spec: GrantSpec) -> IssuedCredential:
        """Mint a credential. Raises IssuanceError when the issuer fails."""
        ...

    async def revoke(self, handle: Mapping[str, str]) -> None:
        """Revoke at the source; a credential already gone counts as revoked.

        Raises IssuanceError when the issuer fails.
        """
        ...

    async def state_at_source(self, handle: Mapping[str, str]) -> SourceState:
        """Whether the credential still lives at its issuer. Raises IssuanceError."""
        ...
