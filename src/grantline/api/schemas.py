"""Request and response bodies of the HTTP API. Unknown fields are refused everywhere."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from grantline.domain.models import MAX_TTL_SECONDS, MIN_TTL_SECONDS, CredentialType


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AgentBlock(_Strict):
    on_behalf_of: str = Field(default="", max_length=512)
    goal: str = Field(default="", max_length=2048)
    tool: str = Field(default="", max_length=256)
    prompt_sha256: str = Field(default="", max_length=128)


class AccessRequestBody(_Strict):
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
    public_key: dict[str, Any] | None = None

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
    reason: str = Field(min_length=1, max_length=1024)


class IntrospectBody(_Strict):
    token: str = Field(min_length=1, max_length=16384)


class DecisionView(BaseModel):
    allow: bool
    reasons: list[str]
    policy_digest: str


class AccessResponse(BaseModel):
    request_id: str
    status: str
    decision: DecisionView
    credential: dict[str, Any] | None = None
    error: dict[str, str] | None = None


DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"


class PolicyInputsBody(_Strict):
    """Which kept decision inputs to read: at most 500 digests a call."""

    digests: list[str] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _digests(self) -> PolicyInputsBody:
        bad = [d for d in self.digests if not re.fullmatch(DIGEST_PATTERN, d)]
        if bad:
            raise ValueError(f"not a sha256:<64 hex> digest: {bad[0][:80]!r}")
        return self
