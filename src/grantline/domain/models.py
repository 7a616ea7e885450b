"""Value objects of an access request's life: who asked, what for, what was decided and issued."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
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
    REJECTED = "rejected"
    FAILED = "failed"


class ReviewStatus(enum.StrEnum):
    """The post-incident review of a break-glass grant: apart from the status, because a
    grant may have expired long before anyone reviewed it."""

    PENDING = "review_pending"
    REVIEWED = "reviewed"


# Statuses in which a credential may be alive and usable.
IN_FORCE = frozenset({Status.ISSUED, Status.REVOCATION_PENDING})


class Event(enum.StrEnum):
    """The kinds of record in the log."""

    REQUESTED = "requested"
    EVALUATED = "evaluated"
    DENIED = "denied"
    APPROVAL_GIVEN = "approval_given"  # one approver said yes
    APPROVAL_REFUSED = "approval_refused"  # the approval policy refused an approver
    APPROVED = "approved"  # by policy alone, by a quorum of approvers, or break-glass
    REJECTED = "rejected"
    COLLECTED = "collected"  # the requester collected an approved credential
    REVIEWED = "reviewed"  # the post-incident review of a break-glass grant
    NOTIFICATION_FAILED = "notification_failed"
    ISSUED = "issued"
    USED = "used"  # the credential's uses in one window, as resource servers reported them
    OUTCOME = "outcome"  # what the action the access served did, as its holder reports
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
    break_glass: bool = False
    justification: str = ""
    # RFC 7638 thumbprint of the caller's public key, when the credential is to be bound to it.
    key_thumbprint: str = ""

    def as_policy_request(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "role": self.role,
            "ttl_seconds": self.ttl.seconds,
            "credential_type": self.credential_type.value,
            "purpose": self.purpose,
            "ticket": self.ticket,
            "agent": dict(self.agent) if self.agent else {},
            "break_glass": self.break_glass,
            "justification": self.justification,
            "public_key_thumbprint": self.key_thumbprint,
        }


MAX_ACTOR_CHAIN = 5


@dataclass(frozen=True, slots=True)
class Delegation:
    """An agent acting for a principal, both proven by tokens (RFC 8693 style).

    ``actor`` authenticated the call; ``principal`` is who the credential is for. ``chain`` is
    every actor, the caller first, then the actors the principal's token already names.
    """

    principal: Identity
    actor: Identity
    chain: tuple[str, ...]

    @classmethod
    def of(cls, principal: Identity, actor: Identity) -> Delegation:
        """Raises :class:`InvalidRequestError` when the tokens do not make a delegation."""
        if principal.subject == actor.subject:
            raise InvalidRequestError("subject_token names the caller itself: nothing is delegated")
        prior = _prior_actors(principal.claims.get("act"), room=MAX_ACTOR_CHAIN - 1)
        return cls(principal, actor, (actor.subject, *prior))

    @classmethod
    def in_token(cls, caller: Identity) -> Delegation | None:
        """The delegation a caller's own token states, if it carries an ``act`` claim: a
        trusted issuer (a token exchange service) minted it for an agent acting for ``sub``.
        Raises :class:`InvalidRequestError` for a malformed claim."""
        if "act" not in caller.claims:
            return None
        chain = tuple(_prior_actors(caller.claims["act"], room=MAX_ACTOR_CHAIN))
        return cls(caller, Identity(chain[0], caller.issuer), chain)

    def act_claim(self) -> dict[str, Any]:
        return act_claim(self.chain)


def act_claim(chain: Sequence[str]) -> dict[str, Any]:
    """The RFC 8693 ``act`` claim of an actor chain: the current actor outermost, prior
    actors nested inside it."""
    claim: dict[str, Any] = {}
    for subject in reversed(chain):
        claim = {"sub": subject, "act": claim} if claim else {"sub": subject}
    return claim


def _prior_actors(act: Any, *, room: int) -> list[str]:
    """The subjects of a (nested) ``act`` claim, outermost first: at most ``room`` of them."""
    chain: list[str] = []
    while act is not None:
        subject = act.get("sub") if isinstance(act, Mapping) else None
        if not isinstance(subject, str) or not subject:
            raise InvalidRequestError("subject_token carries a malformed act claim")
        if len(chain) == room:
            raise InvalidRequestError(
                f"the actor chain is longer than {MAX_ACTOR_CHAIN} delegations"
            )
        chain.append(subject)
        act = act.get("act")
    return chain


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
    ``input_json`` is the canonical input the digest was taken over (empty when the engine
    never saw one): the store keeps it by digest for replay, never the log.
    """

    allow: bool
    reasons: tuple[str, ...]
    policy_digest: str
    input_digest: str
    require_approval: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    input_json: bytes = field(default=b"", repr=False, compare=False)

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
