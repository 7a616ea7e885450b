"""The use case: one access request from identity to credential, in order, failing closed.

Order of steps for a request: read the caller's active grants, evaluate the policy, then
- deny: append ``requested``, ``evaluated``, ``denied`` together;
- allow, credential minted inside the broker (JWT): mint, then append ``requested``,
  ``evaluated``, ``issued`` in one atomic write before the credential is returned;
- allow, credential minted outside (Vault): append ``requested`` and ``evaluated`` first (the
  intent), mint, append ``issued``; if that write fails, revoke what was minted.
No credential ever leaves without its durable ``issued`` record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from grantline.domain.clock import Clock
from grantline.domain.errors import (
    ConflictError,
    ForbiddenError,
    GrantlineError,
    InvalidRequestError,
    IssuanceError,
    NotFoundError,
)
from grantline.domain.ids import new_request_id
from grantline.domain.models import (
    IN_FORCE,
    AccessRequest,
    ActiveGrant,
    Decision,
    Event,
    Identity,
    IssuedCredential,
    RequestId,
    Status,
    format_time,
    parse_time,
)
from grantline.domain.policy_input import build_policy_input, json_safe
from grantline.evidence.canonical import canonicalize
from grantline.issuers.base import CredentialIssuer, GrantSpec
from grantline.policy.engine import PolicyEngine, digest_of
from grantline.store.keys import Index
from grantline.store.ledger import Draft
from grantline.store.log import ActiveAdd, Effects, to_millis

log = logging.getLogger(__name__)

AUDITORS = "auditors"
OPERATORS = "operators"


class Ledger(Protocol):
    async def append(self, drafts: Sequence[Draft]) -> list[bytes]: ...


class GrantState(Protocol):
    async def active_for(self, subject: str, now: datetime) -> list[ActiveGrant]: ...

    async def request(self, request_id: str) -> dict[str, str] | None: ...

    async def request_for_token(self, token_id: str) -> str | None: ...


class Log(Protocol):
    async def read(self, after: int, limit: int) -> list[tuple[int, bytes]]: ...

    async def lineage(self, request_id: str) -> list[bytes]: ...


class TokenIntrospector(Protocol):
    def claims_of(self, token: str) -> Mapping[str, Any] | None:
        """The claims of a token this broker signed and that has not expired, else None."""
        ...


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    request_id: RequestId
    status: Status
    decision: Decision
    credential: Mapping[str, Any] | None = None


class Broker:
    def __init__(
        self,
        *,
        ledger: Ledger,
        grants: GrantState,
        log: Log,
        policy: PolicyEngine,
        issuers: Mapping[str, CredentialIssuer],
        introspector: TokenIntrospector,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._grants = grants
        self._log = log
        self._policy = policy
        self._issuers = issuers
        self._introspector = introspector
        self._clock = clock

    async def request_access(self, identity: Identity, request: AccessRequest) -> RequestOutcome:
        """Decide and, when allowed, issue. A deny is an outcome, not an exception.

        Raises:
            DependencyUnavailableError: the store is down (nothing was issued).
            IssuanceError: the credential type is not available, or the issuer failed.
        """
        issuer = self._issuer(request)
        now = self._clock.now()
        request_id = new_request_id(now)
        active = await self._grants.active_for(identity.subject, now)
        policy_input = build_policy_input(identity, request, active, now)
        decision = self._policy.evaluate(policy_input)
        requested = _requested(request_id, policy_input, now)
        allowed = decision.allow and not decision.require_approval
        evaluated = Draft(
            request_id,
            Event.EVALUATED,
            now,
            _evaluated_data(decision),
            Effects(
                request=_evaluated_state(decision),
                # Minted outside, the issuance comes in a later write: until it does, the
                # reconciler watches for an allowed request that never got its credential.
                index_add={Index.AWAITING_ISSUE: to_millis(now)}
                if allowed and issuer.external
                else {},
            ),
        )
        if not allowed:
            return await self._deny(requested, evaluated, decision, now)
        spec = GrantSpec(
            request_id=request_id,
            subject=identity.subject,
            role=request.role,
            target=request.target,
            ttl_seconds=request.ttl.seconds,
            now=now,
            actor=None,
            issuer_config=self._issuer_config(request.role, decision),
        )
        if issuer.external:
            await self._ledger.append([requested, evaluated])
            credential = await self._mint_external(issuer, spec)
        else:
            credential = await issuer.mint(spec)
            await self._ledger.append([requested, evaluated, self._issued(spec, credential)])
        return RequestOutcome(request_id, Status.ISSUED, decision, credential.secret)

    def _issuer(self, request: AccessRequest) -> CredentialIssuer:
        issuer = self._issuers.get(request.credential_type.value)
        if issuer is None:
            raise InvalidRequestError(
                f"credential type {request.credential_type.value} is not configured on this broker",
                code="credential_type_unavailable",
            )
        return issuer

    def _issuer_config(self, role: str, decision: Decision) -> Mapping[str, Any]:
        """The role's ``vault`` block, or the one the decision returned, which takes precedence."""
        chosen = decision.extra.get("vault")
        if isinstance(chosen, Mapping):
            return chosen
        configured = self._policy.role_config(role).get("vault")
        return configured if isinstance(configured, Mapping) else {}

    async def _mint_external(self, issuer: CredentialIssuer, spec: GrantSpec) -> IssuedCredential:
        try:
            credential = await issuer.mint(spec)
        except GrantlineError as exc:
            await self._record_failure(spec.request_id, exc)
            raise
        try:
            await self._ledger.append([self._issued(spec, credential)])
        except GrantlineError:
            # The caller must never hold a credential the log does not know of.
            await self._revoke_quietly(issuer, credential)
            raise
        return credential

    async def _record_failure(self, request_id: RequestId, exc: GrantlineError) -> None:
        data = {"code": exc.code, "message": exc.message}
        effects = Effects(
            request={"status": Status.FAILED.value}, index_remove=(Index.AWAITING_ISSUE,)
        )
        try:
            await self._ledger.append(
                [Draft(request_id, Event.FAILED, self._clock.now(), data, effects)]
            )
        except GrantlineError:
            log.exception("could not record the failure of request %s", request_id)

    async def _revoke_quietly(self, issuer: CredentialIssuer, credential: IssuedCredential) -> None:
        try:
            await issuer.revoke(credential.handle)
        except GrantlineError:
            log.exception("could not revoke unrecorded credential %s", credential.fingerprint)

    async def _deny(
        self, requested: Draft, evaluated: Draft, decision: Decision, now: datetime
    ) -> RequestOutcome:
        reasons = list(decision.reasons) or ["policy did not allow the request"]
        if decision.allow and decision.require_approval:
            reasons = ["the policy requires approval, which this broker does not offer yet"]
            decision = Decision(
                allow=False,
                reasons=tuple(reasons),
                policy_digest=decision.policy_digest,
                input_digest=decision.input_digest,
                require_approval=True,
                extra=decision.extra,
            )
        denied = Draft(
            requested.request_id,
            Event.DENIED,
            now,
            {"reasons": reasons},
            Effects(request={"status": Status.DENIED.value, "reasons": json.dumps(reasons)}),
        )
        await self._ledger.append([requested, evaluated, denied])
        return RequestOutcome(RequestId(requested.request_id), Status.DENIED, decision)

    def _issued(self, spec: GrantSpec, credential: IssuedCredential) -> Draft:
        handle = dict(credential.handle)
        state: dict[str, str | int] = {
            "status": Status.ISSUED.value,
            "issued_at": format_time(credential.issued_at),
            "expires_at": format_time(credential.expires_at),
            "fingerprint": credential.fingerprint,
            "handle": json.dumps(handle, sort_keys=True),
        }
        effects = Effects(
            request=state,
            active_add=ActiveAdd(
                spec.subject,
                ActiveGrant(spec.request_id, spec.role, spec.target, credential.expires_at),
                spec.now,
            ),
            jti=handle.get("jti"),
            index_add={Index.LIVE: to_millis(credential.expires_at)},
            index_remove=(Index.AWAITING_ISSUE,),
        )
        return Draft(
            spec.request_id, Event.ISSUED, self._clock.now(), credential.evidence(), effects
        )

    async def describe(self, caller: Identity, request_id: str) -> dict[str, Any]:
        """The request's status and summary, never the credential. Requester or auditor only."""
        state = await self._readable_state(caller, request_id)
        summary: dict[str, Any] = {"request_id": request_id, **state}
        summary.pop("handle", None)
        if "reasons" in summary:
            summary["reasons"] = json.loads(summary["reasons"])
        if "ttl_seconds" in summary:
            summary["ttl_seconds"] = int(summary["ttl_seconds"])
        summary["status"] = self._effective_status(state)
        return summary

    async def lineage(self, caller: Identity, request_id: str) -> list[bytes]:
        """The request's records. Auditors also see request ids known only from findings
        (a credential found at an issuer for a request the broker never received)."""
        if not self.is_auditor(caller):
            await self._readable_state(caller, request_id)
        lines = await self._log.lineage(request_id)
        if not lines:
            raise NotFoundError(f"no request {request_id}")
        return lines

    async def records(self, caller: Identity, after: int, limit: int) -> list[tuple[int, bytes]]:
        self.require_auditor(caller, "read the whole log")
        return await self._log.read(after, limit)

    def is_auditor(self, caller: Identity) -> bool:
        return caller.subject in self._policy.group_members(AUDITORS)

    def require_auditor(self, caller: Identity, action: str) -> None:
        """Raises ForbiddenError unless ``caller`` is in ``data.grantline.groups.auditors``."""
        if not self.is_auditor(caller):
            raise ForbiddenError(f"only auditors may {action}")

    def require_operator(self, caller: Identity, action: str) -> None:
        """Raises ForbiddenError unless ``caller`` is in ``data.grantline.groups.operators``."""
        if caller.subject not in self._policy.group_members(OPERATORS):
            raise ForbiddenError(f"only operators may {action}")

    async def revoke(self, caller: Identity, request_id: str, reason: str) -> dict[str, Any]:
        """Revoke at the issuer, then record who did it and why. Revoking twice is harmless.

        Raises:
            IssuanceError: the issuer could not revoke (code ``revocation_pending``); the
                failure is recorded and the grant stays in force until a retry succeeds.
        """
        state = await self._readable_state(caller, request_id)
        return await self.revoke_grant(request_id, state, by=caller.subject, reason=reason)

    async def revoke_grant(
        self,
        request_id: str,
        state: Mapping[str, str],
        *,
        by: str,
        reason: str,
        source: str = "api",
    ) -> dict[str, Any]:
        """Revoke a grant whose state was already read (the API after its access check, or
        the reconciler retrying a pending revocation)."""
        status = state.get("status")
        if status == Status.REVOKED.value:
            return {"request_id": request_id, "status": Status.REVOKED.value, "already": True}
        if status not in IN_FORCE:
            raise ConflictError(f"request {request_id} is {status}: nothing to revoke")
        issuer = self._issuers.get(state["credential_type"])
        if issuer is None:
            raise IssuanceError(f"credential type {state['credential_type']} is not configured")
        try:
            await issuer.revoke(handle_of(state))
        except IssuanceError as exc:
            await self._record_revocation_failure(request_id, by, reason, source, exc)
            raise IssuanceError(
                f"{exc.message}. The grant stays in force and the revocation will be retried.",
                code="revocation_pending",
            ) from exc
        now = self._clock.now()
        data = {"by": by, "reason": reason, "source": source}
        effects = _ended(state, now, extra={"revoked_by": by})
        await self._ledger.append([Draft(request_id, Event.REVOKED, now, data, effects)])
        return {"request_id": request_id, "status": Status.REVOKED.value, "already": False}

    async def _record_revocation_failure(
        self, request_id: str, by: str, reason: str, source: str, exc: IssuanceError
    ) -> None:
        now = self._clock.now()
        data = {
            "by": by,
            "reason": reason,
            "source": source,
            "error": {"code": exc.code, "message": exc.message},
        }
        effects = Effects(
            request={
                "status": Status.REVOCATION_PENDING.value,
                "revocation_error": exc.message,
                "revocation_requested_by": by,
            },
            index_add={Index.REVOKING: to_millis(now)},
        )
        await self._ledger.append([Draft(request_id, Event.REVOCATION_FAILED, now, data, effects)])

    async def record_end(
        self, request_id: str, state: Mapping[str, str], event: Event, data: Mapping[str, Any]
    ) -> None:
        """Record that a grant ended without the API: it expired, or its issuer dropped it."""
        now = self._clock.now()
        await self._ledger.append([Draft(request_id, event, now, data, _ended(state, now, event))])

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: active only for an unexpired token of ours whose grant is still issued."""
        claims = self._introspector.claims_of(token)
        token_id = claims.get("jti") if claims is not None else None
        if claims is None or not isinstance(token_id, str):
            return {"active": False}
        request_id = await self._grants.request_for_token(token_id)
        state = await self._grants.request(request_id) if request_id else None
        if state is None or self._effective_status(state) != Status.ISSUED.value:
            return {"active": False}
        return {"active": True, "token_type": "Bearer", **dict(claims)}

    async def _readable_state(self, caller: Identity, request_id: str) -> dict[str, str]:
        state = await self._grants.request(request_id)
        if state is None:
            raise NotFoundError(f"no request {request_id}")
        if state.get("subject") != caller.subject and not self.is_auditor(caller):
            # Same answer as for a missing request: ids of others' requests are not disclosed.
            raise NotFoundError(f"no request {request_id}")
        return state

    def _effective_status(self, state: Mapping[str, str]) -> str:
        status = state.get("status", Status.FAILED.value)
        expires = state.get("expires_at")
        if status in IN_FORCE and expires and parse_time(expires) <= self._clock.now():
            return Status.EXPIRED.value
        return status


def handle_of(state: Mapping[str, str]) -> dict[str, str]:
    """The revocation handle an ``issued`` record left in the request's state (empty if none)."""
    handle: dict[str, str] = json.loads(state.get("handle", "{}"))
    return handle


def _ended(
    state: Mapping[str, str],
    now: datetime,
    event: Event = Event.REVOKED,
    extra: Mapping[str, str] | None = None,
) -> Effects:
    """A grant leaving force: out of the subject's active grants and the live work lists."""
    status = Status.EXPIRED if event == Event.EXPIRED else Status.REVOKED
    fields = {"status": status.value, f"{status.value}_at": format_time(now), **(extra or {})}
    return Effects(
        request=fields,
        active_remove=state.get("subject"),
        index_remove=(Index.LIVE, Index.REVOKING),
    )


def _requested(request_id: RequestId, policy_input: Mapping[str, Any], now: datetime) -> Draft:
    """The ``requested`` record, built from the policy input so both describe the same request."""
    identity, request = policy_input["identity"], policy_input["request"]
    data = {
        "identity": {
            "subject": identity["subject"],
            "issuer": identity["issuer"],
            "claims_sha256": digest_of(canonicalize(identity["claims"])),
        },
        "request": request,
    }
    state = {
        "subject": identity["subject"],
        "issuer": identity["issuer"],
        "role": request["role"],
        "target": request["target"],
        "credential_type": request["credential_type"],
        "ttl_seconds": request["ttl_seconds"],
        "created_at": format_time(now),
    }
    return Draft(request_id, Event.REQUESTED, now, data, Effects(request=state))


def _evaluated_state(decision: Decision) -> dict[str, str | int]:
    state: dict[str, str | int] = {"policy_digest": decision.policy_digest}
    if decision.allow and not decision.require_approval:
        state["status"] = Status.APPROVED.value
    return state


def _evaluated_data(decision: Decision) -> dict[str, Any]:
    return {
        "decision": json_safe(
            {
                **dict(decision.extra),
                **decision.summary(),
                "require_approval": decision.require_approval,
            }
        ),
        "policy_digest": decision.policy_digest,
        "input_digest": decision.input_digest,
    }
