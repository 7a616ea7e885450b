"""Response bodies of the HTTP API, as the OpenAPI document states them.

The routes answer with plain JSON (the grant path is benchmarked, so nothing is validated a
second time on the way out); these models say what those answers hold. A schemathesis run
against a served broker checks that the two agree (tests/e2e/test_openapi_fuzz.py). The log's
answers are in ``api/audit_responses.py``.

Closed models (``Closed``) list every member an answer can have; open ones (``Open``) name
those always or usually there and admit more: a request's state grows with its lineage, and an
introspected token carries whatever claims it was issued with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from grantline.api.schemas import ErrorDetail
from grantline.domain.models import CredentialType, ReviewStatus, Status

DIGEST = "sha256:bef5b76dbf1746a64fb797d152b7d101e63eb1d414d8986afd4deb1cb4d151aa"
REQUEST_ID = "01a20b77-de59-7178-9330-c62ebdc11f1f"
KID = "1cdH1KY6G4WHJiCbgSIW3soi4F6K7qI21OjgRZ74leE"
HASH_B64 = "eE9TSaxbdsuDRBtqjrkygpNF13YFJyj3fKUgbKfxiaU="
SIG = "AHDaLKpVlkSq4ScaXQmOEPEQBv4nxIveJSf6Kz-9t2E5T5suDU1p7QCI1askt7yFNCKiu-1QUvsggq76AjJCCg"
JWT = "eyJhbGciOiJFZERTQSIsImtpZCI6IjZ6Zm4ifQ.eyJzdWIiOiJzcGlmZmUifQ.c2lnbmF0dXJl"

_T = TypeVar("_T")
# A member that may be absent but is never null: documented as its type, not required.
Maybe: TypeAlias = _T | SkipJsonSchema[None]


def _absent_not_null(schema: dict[str, Any]) -> None:
    """Drop ``"default": null`` of members that are absent rather than null when unset."""
    for member in schema.get("properties", {}).values():
        if member.get("default", ...) is None:
            del member["default"]


def examples(*values: dict[str, Any]) -> ConfigDict:
    def extra(schema: dict[str, Any]) -> None:
        _absent_not_null(schema)
        schema["examples"] = list(values)

    return ConfigDict(json_schema_extra=extra)


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_absent_not_null)


class Open(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra=_absent_not_null)


# -- access requests ---------------------------------------------------------------------------


class Decision(Closed):
    """The policy's answer: ``reasons`` say why not (or what it noted)."""

    allow: bool
    reasons: list[str]
    policy_digest: str = Field(description="the policy bundle that decided")


class Credential(Closed):
    """The credential itself: ``token`` (jwt, vault_token with its ``accessor``), a certificate
    and key (x509), or a lease and its data (vault_secret)."""

    type: CredentialType
    expires_at: datetime
    token: Maybe[str] = None
    accessor: Maybe[str] = None
    policies: Maybe[list[str]] = None
    certificate: Maybe[str] = None
    private_key: Maybe[str] = None
    private_key_type: Maybe[str | None] = None
    issuing_ca: Maybe[str | None] = None
    ca_chain: Maybe[list[str]] = None
    serial_number: Maybe[str] = None
    lease_id: Maybe[str] = None
    data: Maybe[dict[str, Any]] = None


class Factor(Closed):
    """Approvals needed from one group, and who is in it."""

    group: str
    count: int
    members: list[str]


class Shortfall(Closed):
    """How many more approvals one group still owes."""

    group: str
    count: int


class GivenApproval(Closed):
    approver: str
    groups: list[str] = Field(description="the required groups this approval counts for")


class ApprovalView(Closed):
    """What a pending request waits for; ``eligible`` lists who may still approve it."""

    required: list[Factor]
    missing: list[Shortfall]
    approvals: list[GivenApproval]
    expires_at: Maybe[datetime | None] = None
    eligible: Maybe[list[str]] = None


class Issued(Closed):
    """201: issued at once (by policy, or as break-glass)."""

    model_config = examples(
        {
            "request_id": REQUEST_ID,
            "status": "issued",
            "decision": {"allow": True, "reasons": [], "policy_digest": DIGEST},
            "credential": {"type": "jwt", "token": JWT, "expires_at": "2026-11-24T03:02:14.000Z"},
        }
    )

    request_id: str
    status: Literal["issued"]
    decision: Decision
    credential: Credential


class Pending(Closed):
    """202: the role needs approvers; they are notified, the requester collects later."""

    model_config = examples(
        {
            "request_id": REQUEST_ID,
            "status": "pending_approval",
            "decision": {"allow": True, "reasons": [], "policy_digest": DIGEST},
            "approval": {
                "required": [
                    {"group": "security", "count": 1, "members": ["user:sam", "user:sofia"]}
                ],
                "missing": [{"group": "security", "count": 1}],
                "approvals": [],
                "expires_at": "2026-11-24T03:52:15.651Z",
                "eligible": ["user:sam", "user:sofia"],
            },
        }
    )

    request_id: str
    status: Literal["pending_approval"]
    decision: Decision
    approval: ApprovalView


class Denied(Closed):
    """403: the policy said no. The denial is recorded like any other decision."""

    model_config = examples(
        {
            "request_id": REQUEST_ID,
            "status": "denied",
            "decision": {
                "allow": False,
                "reasons": ["ttl_seconds 6000 exceeds the cap of 3600 for db-read"],
                "policy_digest": DIGEST,
            },
            "error": {
                "code": "policy_denied",
                "message": "ttl_seconds 6000 exceeds the cap of 3600 for db-read",
            },
        }
    )

    request_id: str
    status: Literal["denied"]
    decision: Decision
    error: ErrorDetail


_SUMMARY = {
    "request_id": REQUEST_ID,
    "status": "issued",
    "subject": "spiffe://example.org/ci-runner",
    "issuer": "grantline-dev",
    "requested_by": "spiffe://example.org/ci-runner",
    "role": "db-read",
    "target": "postgres://orders-db",
    "credential_type": "jwt",
    "ttl_seconds": 600,
    "created_at": "2026-11-24T02:52:14.809Z",
    "policy_digest": DIGEST,
    "approved_at": "2026-11-24T02:52:14.809Z",
    "issued_at": "2026-11-24T02:52:14.000Z",
    "expires_at": "2026-11-24T03:02:14.000Z",
    "fingerprint": "sha256:442a159f86605959dadb11d0fb06fa1813e5557f6a3fdb5dad7a63676f93c3fa",
}


class RequestSummary(Open):
    """A request's status and what it is about, never its credential. Members appear as the
    request moves on (``approved_at``, ``issued_at``, ``revoked_at``, ...)."""

    model_config = examples(_SUMMARY)

    request_id: str
    status: Status = Field(description="as of now: a grant past its end reads as expired")
    subject: str = Field(description="whom the credential is for")
    issuer: str = Field(description="the issuer of the subject's identity token")
    requested_by: str = Field(description="who asked: the subject, or an agent acting for it")
    role: str
    target: str
    credential_type: CredentialType
    ttl_seconds: int
    created_at: datetime
    policy_digest: Maybe[str] = None
    reasons: Maybe[list[str]] = Field(default=None, description="why it was denied")
    actors: Maybe[list[str]] = Field(default=None, description="the agents, outermost first")
    break_glass: Maybe[Literal[True]] = None
    approval: Maybe[ApprovalView] = None
    approval_deadline: Maybe[datetime] = None
    credential_ready: Maybe[bool] = Field(
        default=None, description="an approved credential waits to be collected"
    )
    approved_at: Maybe[datetime] = None
    issued_at: Maybe[datetime] = None
    expires_at: Maybe[datetime] = None
    fingerprint: Maybe[str] = None
    revoked_at: Maybe[datetime] = None
    revoked_by: Maybe[str] = None
    expired_at: Maybe[datetime] = None
    rejected_by: Maybe[str] = None
    collected_at: Maybe[datetime] = None
    review_status: Maybe[ReviewStatus] = None
    review_due_at: Maybe[datetime] = None
    reviewed_by: Maybe[str] = None
    reviewed_at: Maybe[datetime] = None


class PendingList(Closed):
    """The pending requests the caller may approve now."""

    model_config = examples(
        {"requests": [{**_SUMMARY, "status": "pending_approval", "role": "report-write"}]}
    )

    requests: list[RequestSummary]


class Collected(Closed):
    """An approved credential, handed over once."""

    model_config = examples(
        {
            "request_id": REQUEST_ID,
            "status": "issued",
            "credential": {"type": "jwt", "token": JWT, "expires_at": "2026-11-24T03:02:16.000Z"},
        }
    )

    request_id: str
    status: Literal["issued"]
    credential: Credential


class Revocation(Closed):
    """``already`` is true when the grant had been revoked before: revoking twice is harmless."""

    model_config = examples({"request_id": REQUEST_ID, "status": "revoked", "already": False})

    request_id: str
    status: Literal["revoked"]
    already: bool


class OutcomeRecorded(Closed):
    """The ``outcome`` record's place in the log."""

    model_config = examples({"request_id": REQUEST_ID, "event": "outcome", "seq": 42})

    request_id: str
    event: Literal["outcome"]
    seq: int


class UsageAccepted(Closed):
    """What a usage report counted."""

    model_config = examples({"accepted": 1, "unknown": [], "duplicate": False})

    accepted: int = Field(description="uses counted (0 for a batch id seen before)")
    unknown: list[int] = Field(
        description="indexes of the uses whose jti this broker never issued (not counted)"
    )
    duplicate: bool = Field(description="the batch id was seen before: nothing counted again")


class Introspection(Open):
    """RFC 7662. Inactive: only ``{"active": false}``. Active: the token's claims besides."""

    model_config = examples(
        {"active": False},
        {
            "active": True,
            "token_type": "Bearer",
            "iss": "https://grantline.example.org",
            "sub": "spiffe://example.org/ci-runner",
            "aud": "postgres://orders-db",
            "iat": 1795488734,
            "nbf": 1795488734,
            "exp": 1795489334,
            "jti": "c9fc223b-c0f3-4e74-901b-71244c78f3da",
            "role": "db-read",
            "request_id": REQUEST_ID,
        },
    )

    active: bool
    token_type: Maybe[Literal["Bearer"]] = None


# -- published, unauthenticated --------------------------------------------------------------------


class Jwk(Open):
    """A public key; ``grantline_purpose`` says whether it signs tokens or the log."""

    kty: str
    kid: str
    alg: Maybe[str] = None
    use: Maybe[str] = None
    crv: Maybe[str] = None
    x: Maybe[str] = None
    grantline_purpose: Maybe[Literal["token", "log"]] = None


class Jwks(Closed):
    model_config = examples(
        {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": "dI5TxtfNowUlqlCnVGWjS7n5MwVysa0Cd9d3JC6IIaY",
                    "kid": KID,
                    "alg": "EdDSA",
                    "use": "sig",
                    "grantline_purpose": "log",
                }
            ]
        }
    )

    keys: list[Jwk]


class Discovery(Closed):
    model_config = examples(
        {
            "issuer": "https://grantline.example.org",
            "jwks_uri": "https://grantline.example.org/.well-known/jwks.json",
            "introspection_endpoint": "https://grantline.example.org/v1/introspect",
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "token_endpoint_auth_methods_supported": ["none"],
        }
    )

    issuer: str
    jwks_uri: str
    introspection_endpoint: str
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]


class Health(Closed):
    model_config = examples({"status": "ok"})

    status: Literal["ok"]


class ReadinessChecks(Closed):
    store: bool
    signer: bool
    policy: bool
    persistence: Maybe[bool] = None


class Readiness(Closed):
    """Ready only when every check holds; ``vault`` is reported, not required."""

    model_config = examples(
        {"ready": True, "checks": {"store": True, "signer": True, "policy": True}, "vault": True}
    )

    ready: bool
    checks: ReadinessChecks
    reasons: Maybe[list[str]] = None
    vault: Maybe[bool] = None
