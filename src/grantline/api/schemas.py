"""Request bodies of the HTTP API, and the error body every failure answers with.

Unknown fields are refused everywhere. Response bodies are in ``api/responses.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from grantline.domain.jwk import SIGNING_ALGORITHMS
from grantline.domain.models import MAX_TTL_SECONDS, MIN_TTL_SECONDS, CredentialType

_B64URL = "^[A-Za-z0-9_-]+$"
# What domain/jwk.py accepts, as far as a schema can say it (not whether an EC point lies on
# its curve, nor RSA's odd modulus and exponent).
_PUBLIC_JWK: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "description": "A public JWK: OKP Ed25519, EC P-256/P-384/P-521 (a point on the "
            "curve) or RSA of at least 2048 bits. `alg`, `use` (`sig`) and `kid` are kept, "
            "other public members dropped; private members (`d`, `p`, `q`, ...) are refused.",
            "oneOf": [
                {
                    "properties": {
                        "kty": {"const": "OKP"},
                        "crv": {"const": "Ed25519"},
                        # 32 bytes, canonical: the last character carries 4 bits and 2 zeros.
                        "x": {"type": "string", "pattern": "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"},
                    },
                    "required": ["kty", "crv", "x"],
                },
                {
                    "properties": {
                        "kty": {"const": "EC"},
                        "crv": {"enum": ["P-256", "P-384", "P-521"]},
                        "x": {"type": "string", "pattern": _B64URL},
                        "y": {"type": "string", "pattern": _B64URL},
                    },
                    "required": ["kty", "crv", "x", "y"],
                },
                {
                    "properties": {
                        "kty": {"const": "RSA"},
                        "n": {"type": "string", "pattern": _B64URL, "minLength": 342},
                        "e": {"type": "string", "pattern": _B64URL, "maxLength": 6},
                    },
                    "required": ["kty", "n", "e"],
                },
            ],
            "properties": {
                "use": {"const": "sig"},
                "alg": {"enum": sorted(set().union(*SIGNING_ALGORITHMS.values()))},
                "kid": {"type": "string", "minLength": 1},
            },
            "examples": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                }
            ],
        },
        {"type": "null"},
    ]
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AgentBlock(_Strict):
    """An agent asking for someone: whom, why, with which tool, from which prompt."""

    on_behalf_of: str = Field(default="", max_length=512)
    goal: str = Field(default="", max_length=2048)
    tool: str = Field(default="", max_length=256)
    prompt_sha256: str = Field(default="", max_length=128)


class AccessRequestBody(_Strict):
    """What a caller asks for: a role on a target, for a time, as one credential type."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "target": "postgres://orders-db",
                    "role": "db-read",
                    "ttl_seconds": 600,
                    "credential_type": "jwt",
                    "purpose": "nightly export job",
                    "ticket": "CHG-1234",
                },
                {"target": "s3://reports", "role": "report-write", "ttl_seconds": 900},
                {
                    "target": "postgres://orders-db",
                    "role": "db-admin",
                    "ttl_seconds": 900,
                    "break_glass": True,
                    "justification": "INC-4711: orders-db refuses writes",
                },
            ]
        }
    )

    target: str = Field(min_length=1, max_length=512)
    role: str = Field(min_length=1, max_length=128)
    ttl_seconds: int = Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)
    # JSON carries the type as a string; the enum refuses any other value.
    credential_type: CredentialType = Field(default=CredentialType.JWT, strict=False)
    purpose: str = Field(default="", max_length=1024)
    ticket: str = Field(default="", max_length=256)
    agent: AgentBlock | None = None
    break_glass: bool = False
    justification: str = Field(default="", max_length=2048)
    # RFC 8693 style: the token of the principal the caller (an agent) acts for.
    subject_token: str | None = Field(default=None, min_length=1, max_length=16384)
    # A public JWK: the issued JWT is then bound to it (cnf.jkt).
    public_key: Annotated[dict[str, Any] | None, WithJsonSchema(_PUBLIC_JWK)] = None

    @model_validator(mode="after")
    def _justified(self) -> AccessRequestBody:
        if self.break_glass and not self.justification.strip():
            raise ValueError("break_glass needs a justification")
        if self.agent and self.agent.on_behalf_of and self.subject_token is None:
            raise ValueError(
                "agent.on_behalf_of must be proven: send the principal's token as subject_token"
            )
        return self


class ReasonBody(_Strict):
    """Why: recorded with an approval, a rejection, a review or a revocation."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "change CHG-1234"}]})

    reason: str = Field(min_length=1, max_length=1024)


class IntrospectBody(_Strict):
    """RFC 7662: the token to look at."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"token": "eyJhbGciOiJFZERTQSJ9.e30.c2ln"}]}
    )

    token: str = Field(min_length=1, max_length=16384)


class OutcomeBody(_Strict):
    """What the action a grant served did, as the agent (or workload) that held it reports."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "action": "export the Q3 orders",
                    "result": "succeeded",
                    "changed": ["s3://reports/q3.csv"],
                    "summary": "12,408 rows written",
                }
            ]
        }
    )

    action: str = Field(min_length=1, max_length=256, description="what was done")
    result: Literal["succeeded", "failed", "partial"]
    changed: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=32, description="what it changed"
    )
    summary: str | None = Field(default=None, max_length=1024)


class UseBody(_Strict):
    """One use of a Grantline JWT at a resource server."""

    jti: str = Field(min_length=1, max_length=128, description="the token's jti claim")
    operation: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:/*+-]+$",
        description="what was done, as the resource server names it (GET, s3:GetObject)",
    )
    resource: str | None = Field(
        default=None, min_length=1, max_length=256, description="what it was done to"
    )
    outcome: Literal["allowed", "denied", "error"] = Field(
        description="allowed: the token was accepted; denied: refused; error: the call failed"
    )
    reason: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9_]+$",
        description="why a use was refused, as the verifier names it (expired, revoked, "
        "invalid_dpop_proof, proof_required, ...)",
    )
    at: str | None = Field(
        default=None,
        max_length=64,
        description="when the resource server saw it (kept as reported; the broker's receipt "
        "time is the one recorded)",
    )


class UsageBody(_Strict):
    """Uses reported by a resource server, in one batch."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "rs1-20261124-000042",
                    "observations": [
                        {
                            "jti": "8d2c4f0e",
                            "operation": "GET",
                            "resource": "/reports/q3",
                            "outcome": "allowed",
                        }
                    ],
                }
            ]
        }
    )

    batch_id: str = Field(
        min_length=16,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="unique per batch: a batch id seen in the last 24 h is not counted again",
    )
    observations: list[UseBody] = Field(min_length=1, max_length=500)


class ErrorDetail(BaseModel):
    """A stable machine-readable ``code`` and a message for people (never a secret)."""

    model_config = ConfigDict(extra="forbid")

    code: str
    message: str


class ErrorBody(BaseModel):
    """What every failure answers with."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"error": {"code": "not_found", "message": "no request 01a2..."}}]
        },
    )

    error: ErrorDetail


DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
# Checked by the validator below (for its message); the pattern is stated for the document.
_Digest = Annotated[str, WithJsonSchema({"type": "string", "pattern": DIGEST_PATTERN})]


class PolicyInputsBody(_Strict):
    """Which kept decision inputs to read: at most 500 digests a call."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"digests": ["sha256:" + "9" * 64]}]})

    digests: list[_Digest] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _digests(self) -> PolicyInputsBody:
        bad = [d for d in self.digests if not re.fullmatch(DIGEST_PATTERN, d)]
        if bad:
            raise ValueError(f"not a sha256:<64 hex> digest: {bad[0][:80]!r}")
        return self
