"""The timed stand-ins answer as what they wrap, and count each call once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from grantline.domain.errors import IssuanceError
from grantline.domain.models import (
    CredentialType,
    Decision,
    Fingerprint,
    IssuedCredential,
    RequestId,
)
from grantline.issuers.base import GrantSpec, SourceState
from grantline.observe import context
from grantline.observe.context import RequestIds
from grantline.observe.instruments import TimedIssuer, TimedPolicyEngine
from grantline.observe.metrics import ISSUANCE_SECONDS, POLICY_SECONDS

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Engine:
    blocking = False
    digest = "sha256:p"

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        return Decision(True, (), self.digest, "sha256:i", extra={"rule": "rbac"})

    def evaluate_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        return Decision(False, ("no",), self.digest, "sha256:i")

    def ready(self) -> bool:
        return True

    def group_members(self, group: str) -> frozenset[str]:
        return frozenset({"user:sam"})

    def role_config(self, role: str) -> Mapping[str, Any]:
        return {"max_ttl_seconds": 60}

    def bundle_files(self, digest: str) -> Mapping[str, bytes] | None:
        return None


class _Issuer:
    credential_type = CredentialType.VAULT_TOKEN
    external = True

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def mint(self, spec: GrantSpec) -> IssuedCredential:
        if self.fail:
            raise IssuanceError("sealed", code="vault_sealed")
        return IssuedCredential(
            type=self.credential_type,
            fingerprint=Fingerprint("sha256:f"),
            issued_at=spec.now,
            expires_at=spec.now + timedelta(seconds=spec.ttl_seconds),
            handle={"accessor": "a"},
            secret={"token": "hvs.secret"},
        )

    async def revoke(self, handle: Mapping[str, str]) -> None:
        return None

    async def state_at_source(self, handle: Mapping[str, str]) -> SourceState:
        return SourceState.ALIVE


def spec(request_id: str = "0190-aaaa") -> GrantSpec:
    return GrantSpec(RequestId(request_id), "s", "r", "t", 60, NOW)


def test_the_timed_engine_answers_as_the_engine_and_counts_by_entrypoint() -> None:
    engine = TimedPolicyEngine(_Engine())
    decisions, approvals = POLICY_SECONDS.count(("decision",)), POLICY_SECONDS.count(("approval",))

    assert engine.evaluate({}).extra["rule"] == "rbac"
    assert engine.evaluate({}).allow is True
    assert engine.evaluate_approval({}).reasons == ("no",)
    assert engine.digest == "sha256:p"
    assert engine.blocking is False
    assert engine.group_members("security") == frozenset({"user:sam"})
    assert engine.role_config("r") == {"max_ttl_seconds": 60}
    assert engine.ready() is True
    assert engine.bundle_files("sha256:p") is None
    assert POLICY_SECONDS.count(("decision",)) == decisions + 2
    assert POLICY_SECONDS.count(("approval",)) == approvals + 1


async def test_the_timed_issuer_counts_mints_by_type_and_outcome() -> None:
    ok, failed = ("vault_token", "ok"), ("vault_token", "error")
    before_ok, before_failed = ISSUANCE_SECONDS.count(ok), ISSUANCE_SECONDS.count(failed)

    minted = await TimedIssuer(_Issuer()).mint(spec())
    with pytest.raises(IssuanceError):
        await TimedIssuer(_Issuer(fail=True)).mint(spec())

    assert minted.secret == {"token": "hvs.secret"}
    assert ISSUANCE_SECONDS.count(ok) == before_ok + 1
    assert ISSUANCE_SECONDS.count(failed) == before_failed + 1
    issuer = TimedIssuer(_Issuer())
    assert issuer.credential_type is CredentialType.VAULT_TOKEN
    assert issuer.external is True
    assert await issuer.state_at_source({}) is SourceState.ALIVE


async def test_a_mint_names_the_request_being_handled() -> None:
    ids = RequestIds("corr", claimable=True)
    token = context.enter(ids)
    try:
        await TimedIssuer(_Issuer()).mint(spec("0190-bbbb"))
    finally:
        context.leave(token)

    assert ids.request_id == "0190-bbbb"
