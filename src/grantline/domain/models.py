"""Value objects of an access request's life: who asked, what for, what was decided and issued."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NewType

from grantline.domain.errors import InvalidRequestError

RequestId = NewType("RequestId", str)
Fingerprint = NewType("Fingerprint", str)

MIN_TTL_SECONDS = 1
MAX_TTL_SECONDS = 30 * 24 * 3600


class Status(enum.StrEnum):
    """Where a request stands. Each is distinct: an approval is not an issuance."""

    PENDING_APPROVAL = "pending_approval"
    DENIED = "denied"
    APPROVED = "approved"
    ISSUED = "issued"
    # Revocation failed at the issuer: the credential may still work, so the grant counts as
    # active until a retry succeeds.
    REVOCATION_PENDING = "revocation_pending"
    REVOKED = "revoked"
    EXPIRED = "expired"
    FAILED = "failed"


# Statuses in which a credential may be alive and usable.
IN_FORCE = frozenset({Status.ISSUED, Status.REVOCATION_PENDING})


class Event(enum.StrEnum):
    """The kinds of record in the log."""

    REQUESTED = "requested"
    EVALUATED = "evaluated"
    DENIED = "denied"
    ISSUED = "issued"
    FAILED = "failed"
    REVOCATION_FAILED = "revocation_failed"
    REVOKED = "revoked"
    EXPIRED = "expired"
    RECONCILED = "reconciled"


class CredentialType(enum.StrEnum):
    JWT = "jwt"
    VAULT_TOKEN = "vault_token"  # noqa: S105 — a type name, not a secret
    X509 = "x509"
    VAULT_SECRET = "vault_secret"  # noqa: S105 — a type name, not a secret


@dataclass(frozen=True, slots=True)
class Ttl:
    """A credential lifetime in whole seconds, 1 s to 30 days."""

    seconds: int

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int):
            raise InvalidRequestError("ttl_seconds must be a whole number of seconds")
        if not MIN_TTL_SECONDS <= self.seconds <= MAX_TTL_SECONDS:
            raise InvalidRequestError(
                f"ttl_seconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}, "
                f"got {self.seconds}"
            )


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller whose identity token verified against a trusted issuer."""

    subject: str
    issuer: str
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """What a caller asks for. Validated by the API schema; the TTL validates itself."""

    target: str
    role: str
    ttl: Ttl
    credential_type: CredentialType = CredentialType.JWT
    purpose: str = ""
    ticket: str = ""
    agent: Mapping[str, Any] | None = None

    def as_policy_request(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "role": self.role,
            "ttl_seconds": self.ttl.seconds,
            "credential_type": self.credential_type.value,
            "purpose": self.purpose,
            "ticket": self.ticket,
            "agent": dict(self.agent) if self.agent else {},
        }


@dataclass(frozen=True, slots=True)
class ActiveGrant:
    """A grant still in force, as the policy sees it for separation of duties."""

    request_id: RequestId
    role: str
    target: str
    expires_at: datetime

    def as_policy_input(self) -> dict[str, str]:
        return {
            "request_id": self.request_id,
            "role": self.role,
            "target": self.target,
            "expires_at": format_time(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy said. ``allow`` is only ever true when the policy proved it.

    ``policy_digest`` names the exact policy bundle, ``input_digest`` the exact input, so that
    the decision can be replayed; ``extra`` keeps whatever else the policy returned.
    """

    allow: bool
    reasons: tuple[str, ...]
    policy_digest: str
    input_digest: str
    require_approval: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def deny(cls, reason: str, *, policy_digest: str, input_digest: str) -> Decision:
        return cls(
            allow=False, reasons=(reason,), policy_digest=policy_digest, input_digest=input_digest
        )

    def summary(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "reasons": list(self.reasons),
            "policy_digest": self.policy_digest,
        }


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A credential just minted. ``secret`` fields go to the caller only, never to a record."""

    type: CredentialType
    fingerprint: Fingerprint
    issued_at: datetime
    expires_at: datetime
    handle: Mapping[str, str]
    secret: Mapping[str, Any]

    def evidence(self) -> dict[str, Any]:
        """What the ``issued`` record keeps: no secret, only what identifies and revokes it."""
        return {
            "credential_type": self.type.value,
            "fingerprint": self.fingerprint,
            "issued_at": format_time(self.issued_at),
            "expires_at": format_time(self.expires_at),
            "handle": dict(self.handle),
        }


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z``: the one time format of records."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; use an aware UTC datetime")
    # isoformat is several times faster than strftime, and this runs ~10 times per request.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """Parse a time written by :func:`format_time` (or any RFC 3339 UTC time)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return moment.astimezone(UTC)
