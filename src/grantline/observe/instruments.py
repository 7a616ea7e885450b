"""Timed stand-ins for the broker's collaborators, put in place by the composition root.

Each measures the call it forwards into a histogram and, when traces are on, makes it a
child span of the request. Nothing here changes what the wrapped object answers or raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any

from grantline.broker import Broker
from grantline.broker.access import RequestOutcome
from grantline.domain.models import (
    AccessRequest,
    CredentialType,
    Decision,
    Identity,
    IssuedCredential,
)
from grantline.issuers.base import CredentialIssuer, GrantSpec, SourceState
from grantline.observe import context
from grantline.observe.metrics import (
    ACCESS_REQUESTS,
    ISSUANCE_SECONDS,
    LOG_APPEND_SECONDS,
    LOG_RECORDS,
    POLICY_SECONDS,
)
from grantline.observe.outcomes import failure_labels, outcome_labels
from grantline.observe.tracing import Tracing
from grantline.policy.engine import PolicyEngine
from grantline.store.ledger import Draft, Ledger

_DECISION = ("decision",)
_APPROVAL = ("approval",)
_OK = ("ok",)
_ERROR = ("error",)


class TimedPolicyEngine:
    """A :class:`PolicyEngine` whose evaluations are timed, by entrypoint."""

    def __init__(self, engine: PolicyEngine, tracing: Tracing | None = None) -> None:
        self._engine = engine
        self._tracing = tracing
        POLICY_SECONDS.touch(_DECISION)
        POLICY_SECONDS.touch(_APPROVAL)

    @property
    def blocking(self) -> bool:
        return self._engine.blocking

    @property
    def digest(self) -> str:
        return self._engine.digest

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        return self._measured(_DECISION, self._engine.evaluate, policy_input)

    def evaluate_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        return self._measured(_APPROVAL, self._engine.evaluate_approval, approval_input)

    def ready(self) -> bool:
        return self._engine.ready()

    def group_members(self, group: str) -> frozenset[str]:
        return self._engine.group_members(group)

    def role_config(self, role: str) -> Mapping[str, Any]:
        return self._engine.role_config(role)

    def bundle_files(self, digest: str) -> Mapping[str, bytes] | None:
        return self._engine.bundle_files(digest)

    def _measured(
        self,
        entrypoint: tuple[str],
        evaluate: Callable[[Mapping[str, Any]], Decision],
        payload: Mapping[str, Any],
    ) -> Decision:
        if self._tracing is None:
            return _timed_decision(entrypoint, evaluate, payload)
        attributes = {"grantline.policy.entrypoint": entrypoint[0]}
        with self._tracing.child("grantline.policy.evaluate", attributes) as span:
            decision = _timed_decision(entrypoint, evaluate, payload)
            span.set_attribute("grantline.policy.allow", decision.allow)
            span.set_attribute("grantline.policy.rule", str(decision.extra.get("rule", "")))
            span.set_attribute("grantline.policy.digest", decision.policy_digest)
            return decision


def _timed_decision(
    entrypoint: tuple[str],
    evaluate: Callable[[Mapping[str, Any]], Decision],
    payload: Mapping[str, Any],
) -> Decision:
    started = perf_counter()
    try:
        return evaluate(payload)
    finally:
        POLICY_SECONDS.observe(entrypoint, perf_counter() - started)


class TimedLedger(Ledger):
    """The group-committing :class:`Ledger`, each ``append`` timed from call to durable write
    (waiting for the batch in flight included: that is what a request waits for)."""

    def __init__(self, *args: Any, tracing: Tracing | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tracing = tracing
        LOG_APPEND_SECONDS.touch(_OK)

    async def append(self, drafts: Sequence[Draft]) -> list[bytes]:
        if drafts:
            context.claim_request_id(drafts[0].request_id)
        if self._tracing is None:
            return await self._timed(drafts)
        attributes = {"grantline.log.records": len(drafts)}
        with self._tracing.child("grantline.log.append", attributes):
            return await self._timed(drafts)

    async def _timed(self, drafts: Sequence[Draft]) -> list[bytes]:
        started = perf_counter()
        outcome = _ERROR
        try:
            lines = await super().append(drafts)
            outcome = _OK
        finally:
            LOG_APPEND_SECONDS.observe(outcome, perf_counter() - started)
        LOG_RECORDS.inc((), len(lines))
        return lines


class TimedIssuer:
    """A :class:`CredentialIssuer` whose mints are timed, by credential type and outcome."""

    def __init__(self, issuer: CredentialIssuer, tracing: Tracing | None = None) -> None:
        self._issuer = issuer
        self._tracing = tracing
        self._type = issuer.credential_type.value
        self._ok = (self._type, "ok")
        self._error = (self._type, "error")
        ISSUANCE_SECONDS.touch(self._ok)

    @property
    def credential_type(self) -> CredentialType:
        return self._issuer.credential_type

    @property
    def external(self) -> bool:
        return self._issuer.external

    async def mint(self, spec: GrantSpec) -> IssuedCredential:
        context.claim_request_id(spec.request_id)
        if self._tracing is None:
            return await self._timed(spec)
        attributes = {
            "grantline.credential_type": self._type,
            "grantline.request_id": str(spec.request_id),
        }
        with self._tracing.child("grantline.credential.mint", attributes):
            return await self._timed(spec)

    async def _timed(self, spec: GrantSpec) -> IssuedCredential:
        started = perf_counter()
        labels = self._error
        try:
            credential = await self._issuer.mint(spec)
            labels = self._ok
        finally:
            ISSUANCE_SECONDS.observe(labels, perf_counter() - started)
        return credential

    async def revoke(self, handle: Mapping[str, str]) -> None:
        await self._issuer.revoke(handle)

    async def state_at_source(self, handle: Mapping[str, str]) -> SourceState:
        return await self._issuer.state_at_source(handle)


def timed_issuers(
    issuers: Mapping[str, CredentialIssuer], tracing: Tracing | None = None
) -> dict[str, CredentialIssuer]:
    return {name: TimedIssuer(issuer, tracing) for name, issuer in issuers.items()}


class ObservedBroker(Broker):
    """The :class:`Broker`, with each access request counted by outcome, rule and kind of
    reason, and its id bound to the log lines and span of the HTTP request."""

    def __init__(self, *, tracing: Tracing | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracing = tracing

    async def request_access(
        self, caller: Identity, request: AccessRequest, principal: Identity | None = None
    ) -> RequestOutcome:
        ids = context.current()
        if ids is not None:
            ids.claimable = True
        try:
            outcome = await super().request_access(caller, request, principal)
        except Exception as exc:
            labels = failure_labels(exc)
            ACCESS_REQUESTS.inc(labels)
            self._annotate(labels, None)
            raise
        finally:
            if ids is not None:
                ids.claimable = False
        labels = outcome_labels(outcome.status, outcome.decision)
        ACCESS_REQUESTS.inc(labels)
        context.note_request_id(outcome.request_id)
        self._annotate(labels, outcome.request_id)
        return outcome

    def _annotate(self, labels: tuple[str, str, str], request_id: str | None) -> None:
        if self._tracing is None:
            return
        outcome, rule, reason = labels
        attributes = {"grantline.outcome": outcome, "grantline.rule": rule}
        attributes["grantline.reason"] = reason
        if request_id is not None:
            attributes["grantline.request_id"] = request_id
        self._tracing.annotate(attributes)
