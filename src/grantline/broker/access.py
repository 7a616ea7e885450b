"""The use case: one access request from identity to credential, in order, failing closed.

Order of steps for a request: read the active grants of whom the credential is for, evaluate
the policy, then
- deny: append ``requested``, ``evaluated``, ``denied`` together;
- approval needed: append ``requested`` and ``evaluated`` (pending); approvers take it from
  there (broker/approvals.py);
- allowed (by policy alone, or as break-glass), credential minted inside the broker (JWT):
  mint, then append ``requested``, ``evaluated``, ``approved``, ``issued`` in one atomic
  write before the credential is returned;
- allowed, credential minted outside (Vault): append ``requested``, ``evaluated`` and
  ``approved`` first (the intent), mint, append ``issued``; if that write fails, revoke what
  was minted.
No credential ever leaves without its durable ``issued`` record.

Separation of duties holds at the write, not only at the decision: the roles the decision
names in ``conflicts_with`` go with the records (``Effects.exclude``), and the store refuses
the write if the subject holds one of them by then (another request decided at the same
time, here or on another replica). The request is then recorded as denied; a credential
minted outside is revoked, and the intent write checks first so that usually none is minted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from grantline.broker import records
from grantline.broker.decisions import route
from grantline.broker.selection import Selection
from grantline.broker.withheld import WITHHELD_BY, WITHHELD_REASON, WITHHELD_SOURCE, Withheld
from grantline.domain.approvals import Approval, Requirement
from grantline.domain.clock import Clock
from grantline.domain.errors import (
    ConflictError,
    DependencyUnavailableError,
    DutiesConflictError,
    ForbiddenError,
    GrantlineError,
    InvalidRequestError,
    IssuanceError,
    NotFoundError,
    PolicyError,
)
from grantline.domain.ids import new_request_id
from grantline.domain.models import (
    IN_FORCE,
    AccessRequest,
    ActiveGrant,
    CredentialType,
    Decision,
    Delegation,
    Event,
    Identity,
    IssuedCredential,
    RequestId,
    Status,
    format_time,
    parse_time,
)
from grantline.domain.policy_input import build_policy_input
from grantline.issuers.base import CredentialIssuer, GrantSpec
from grantline.policy.engine import PolicyEngine
from grantline.store.keys import Index
from grantline.store.ledger import Draft
from grantline.store.log import Effects, Exclusion, Pickup, to_millis

log = logging.getLogger(__name__)

AUDITORS = "auditors"
OPERATORS = "operators"

# Break-glass grants since the process started, for /metrics.
BREAK_GLASS_GRANTS: Counter[str] = Counter()


class Ledger(Protocol):
    async def append(self, drafts: Sequence[Draft]) -> list[bytes]: ...


class GrantState(Protocol):
    async def active_for(self, subject: str, now: datetime) -> list[ActiveGrant]: ...

    async def request(self, request_id: str) -> dict[str, str] | None: ...

    async def request_for_token(self, token_id: str) -> str | None: ...

    async def fields_of(
        self, request_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, str]]: ...


class Log(Protocol):
    async def read(self, after: int, limit: int) -> list[tuple[int, bytes]]: ...

    async def lineage(self, request_id: str) -> list[bytes]: ...


# Statuses of a request whose credential was issued at some point.
_ISSUED_ONCE = frozenset({Status.ISSUED, Status.REVOCATION_PENDING, Status.REVOKED, Status.EXPIRED})


class TokenIntrospector(Protocol):
    def claims_of(self, token: str, *, allow_expired: bool = False) -> Mapping[str, Any] | None:
        """The claims of a token this broker signed and that has not expired (or, with
        ``allow_expired``, that has), else None."""
        ...


@dataclass(frozen=True, slots=True)
class Introspection:
    """An introspection's answer, and the grant the token belongs to when it is one of ours
    (signed by this broker, expired or not): a resource server asked about a use of it."""

    answer: dict[str, Any]
    request_id: str | None = None


class Notify(Protocol):
    def notify(self, event: str, request_id: str, details: Mapping[str, Any] | None = None) -> None:
        """Queue a notification; never blocks, never raises."""
        ...


class Sealer(Protocol):
    def seal(self, request_id: str, secret: Mapping[str, Any]) -> str: ...


class _Silent:
    def notify(self, event: str, request_id: str, details: Mapping[str, Any] | None = None) -> None:
        return None


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    approval_window_seconds: float = 3600.0
    review_deadline_seconds: float = 72 * 3600.0


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    request_id: RequestId
    status: Status
    decision: Decision
    credential: Mapping[str, Any] | None = None
    requirement: Requirement | None = None
    deadline: datetime | None = None


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
        notifier: Notify | None = None,
        settings: BrokerSettings | None = None,
    ) -> None:
        self._ledger = ledger
        self._grants = grants
        self._log = log
        self._policy = policy
        self._issuers = issuers
        self._introspector = introspector
        self._clock = clock
        self.notifier: Notify = notifier or _Silent()
        self.settings = settings or BrokerSettings()
        # Credentials minted but not returned, their issued record unconfirmed (withheld.py).
        self.withheld = Withheld()

    @property
    def policy(self) -> PolicyEngine:
        return self._policy

    async def decide(self, policy_input: Mapping[str, Any]) -> Decision:
        """The policy's access decision. An engine that waits on the network (OPA) is asked
        from a worker thread, so that the event loop keeps serving meanwhile."""
        if self._policy.blocking:
            return await asyncio.to_thread(self._policy.evaluate, policy_input)
        return self._policy.evaluate(policy_input)

    async def decide_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        """The policy's approval answer, asked as :meth:`decide` asks."""
        if self._policy.blocking:
            return await asyncio.to_thread(self._policy.evaluate_approval, approval_input)
        return self._policy.evaluate_approval(approval_input)

    async def request_access(
        self, caller: Identity, request: AccessRequest, principal: Identity | None = None
    ) -> RequestOutcome:
        """Decide and, when allowed, issue. A deny is an outcome, not an exception.

        ``principal``, proven by its own token, is whom an agent (the caller) acts for.

        Raises:
            InvalidRequestError: the delegation or key binding cannot be honoured.
            DependencyUnavailableError: the store is down (nothing was issued).
            IssuanceError: the credential type is not available, or the issuer failed.
        """
        issuer = self.issuer_for(request.credential_type.value)
        if request.key_thumbprint and issuer.credential_type != CredentialType.JWT:
            raise InvalidRequestError(
                "public_key binds jwt credentials only; "
                f"{request.credential_type.value} credentials carry no cnf"
            )
        delegation = _delegation(caller, principal)
        identity = delegation.principal if delegation else caller
        now = self._clock.now()
        request_id = new_request_id(now)
        active = await self._grants.active_for(identity.subject, now)
        policy_input = build_policy_input(
            identity,
            request,
            active,
            now,
            actor=delegation.actor if delegation else None,
            chain=delegation.chain if delegation else (),
        )
        decision = await self.decide(policy_input)
        requested = records.requested(
            request_id, policy_input, now, caller=caller, delegation=delegation
        )
        state = {k: str(v) for k, v in requested.effects.request.items()}
        decision, requirement = route(decision, role=request.role, break_glass=request.break_glass)
        if not decision.allow:
            return await self._deny(requested, decision, now, state)
        if requirement is not None:
            return await self._hold_for_approval(
                requested, decision, requirement, now, state, policy_input=policy_input
            )
        spec = GrantSpec(
            request_id=request_id,
            subject=identity.subject,
            role=request.role,
            target=request.target,
            ttl_seconds=request.ttl.seconds,
            now=now,
            actor=delegation.act_claim() if delegation else None,
            issuer_config=self.issuer_config(request.role, decision.extra),
            key_thumbprint=request.key_thumbprint,
        )
        evaluated = records.evaluated(request_id, decision, now, state)
        if request.break_glass:
            approval = self._break_glass(
                request_id, request, decision, now, state, external=issuer.external
            )
        else:
            data = {
                "by": "policy",
                "rule": str(decision.extra.get("rule", "")),
                "policy_digest": decision.policy_digest,
            }
            approval = records.approved(request_id, now, data, state, external=issuer.external)
        drafts = [requested, evaluated, approval]
        try:
            credential = await self.issue(
                issuer, spec, drafts, state, conflicts=conflicts_of(decision)
            )
        except DutiesConflictError as exc:
            refused = replace(decision, allow=False, reasons=(exc.message,))
            return RequestOutcome(request_id, Status.DENIED, refused)
        return RequestOutcome(request_id, Status.ISSUED, decision, credential.secret)

    def _break_glass(
        self,
        request_id: RequestId,
        request: AccessRequest,
        decision: Decision,
        now: datetime,
        state: Mapping[str, str],
        *,
        external: bool,
    ) -> Draft:
        due = now + timedelta(seconds=self.settings.review_deadline_seconds)
        data = {
            "by": "break_glass",
            "justification": request.justification,
            "rule": str(decision.extra.get("rule", "")),
            "policy_digest": decision.policy_digest,
            "review_due_at": format_time(due),
        }
        return records.approved(request_id, now, data, state, external=external, review_due=due)

    async def issue(
        self,
        issuer: CredentialIssuer,
        spec: GrantSpec,
        before: Sequence[Draft],
        state: Mapping[str, str],
        *,
        sealer: Sealer | None = None,
        conflicts: Sequence[str] = (),
    ) -> IssuedCredential:
        """Append ``before`` and mint, with the ``issued`` record durable before anyone can
        hold the credential. With ``sealer``, the credential waits sealed for its requester.

        Raises:
            DutiesConflictError: the subject holds one of ``conflicts`` by the time of the
                write; the request was recorded as denied and nothing minted was kept.
        """
        exclusion = Exclusion(spec.subject, tuple(conflicts), spec.now) if conflicts else None
        intent = list(before)
        if exclusion is not None and intent:
            intent[-1] = replace(intent[-1], effects=replace(intent[-1].effects, exclude=exclusion))
        try:
            if issuer.external:
                await self._ledger.append(intent)
                intent = []  # recorded: a refusal from now on only adds the denial
                credential = await self._mint_external(issuer, spec, state, sealer, exclusion)
            else:
                credential = await issuer.mint(spec)
                issued = self._issued(spec, credential, state, sealer, exclusion)
                await self._withholding(spec, self._ledger.append([*before, issued]))
        except DutiesConflictError as exc:
            await self._record_duties_conflict(spec.request_id, intent, exc, state)
            raise
        self._announce(spec.request_id, state)
        return credential

    async def _record_duties_conflict(
        self,
        request_id: RequestId,
        unrecorded: Sequence[Draft],
        exc: DutiesConflictError,
        state: Mapping[str, str],
    ) -> None:
        """Record as denied a request the store refused by separation of duties, with those
        of its records that were refused with it, except the approval it no longer has."""
        reasons = [exc.message]
        effects = Effects(
            request={"status": Status.DENIED.value, "reasons": json.dumps(reasons)},
            index_remove=(Index.AWAITING_ISSUE, Index.PENDING_APPROVAL),
        )
        data = {"reasons": reasons, "conflicting_role": exc.role}
        denied = records.draft(
            request_id, Event.DENIED, self._clock.now(), data, state, effects=effects
        )
        kept = [d for d in unrecorded if d.event != Event.APPROVED]
        await self._ledger.append([*kept, denied])
        self.notifier.notify("denied", request_id, {"reasons": reasons})

    def _announce(self, request_id: str, state: Mapping[str, str]) -> None:
        if state.get(records.BREAK_GLASS) != "1":
            return
        BREAK_GLASS_GRANTS[state.get("role", "")] += 1
        details = {key: state.get(key) for key in ("subject", "role", "target", "requested_by")}
        log.warning(json.dumps({"event": "break_glass", "request_id": request_id, **details}))
        self.notifier.notify("break_glass", request_id, details)

    def _issued(
        self,
        spec: GrantSpec,
        credential: IssuedCredential,
        state: Mapping[str, str],
        sealer: Sealer | None,
        exclusion: Exclusion | None = None,
    ) -> Draft:
        pickup = None
        if sealer is not None:
            ttl_ms = to_millis(credential.expires_at) - to_millis(self._clock.now())
            sealed = sealer.seal(spec.request_id, credential.secret)
            pickup = Pickup(sealed, max(ttl_ms, 1))
        issued = records.issued(spec, credential, self._clock.now(), state, pickup)
        if exclusion is None:
            return issued
        return replace(issued, effects=replace(issued.effects, exclude=exclusion))

    def issuer_for(self, credential_type: str) -> CredentialIssuer:
        issuer = self._issuers.get(credential_type)
        if issuer is None:
            raise InvalidRequestError(
                f"credential type {credential_type} is not configured on this broker",
                code="credential_type_unavailable",
            )
        return issuer

    def issuer_config(self, role: str, decision_extra: Mapping[str, Any]) -> Mapping[str, Any]:
        """The role's ``vault`` block, or the one the decision returned, which takes precedence."""
        chosen = decision_extra.get("vault")
        if isinstance(chosen, Mapping):
            return chosen
        configured = self._policy.role_config(role).get("vault")
        return configured if isinstance(configured, Mapping) else {}

    async def _mint_external(
        self,
        issuer: CredentialIssuer,
        spec: GrantSpec,
        state: Mapping[str, str],
        sealer: Sealer | None,
        exclusion: Exclusion | None,
    ) -> IssuedCredential:
        try:
            credential = await issuer.mint(spec)
        except GrantlineError as exc:
            await self._record_failure(spec.request_id, exc, state)
            raise
        try:
            issued = self._issued(spec, credential, state, sealer, exclusion)
            await self._withholding(spec, self._ledger.append([issued]))
        except GrantlineError:
            # The caller must never hold a credential the log does not know of.
            await self._revoke_quietly(issuer, credential)
            raise
        return credential

    async def _withholding(self, spec: GrantSpec, append: Awaitable[list[bytes]]) -> None:
        """Await the ``issued`` append; when the store fails it, the credential is withheld,
        and the request watched in case the record landed all the same."""
        try:
            await append
        except DependencyUnavailableError:
            self.withheld.add(spec.request_id, self._clock.now())
            raise

    async def settle_withheld(self) -> int:
        """Revoke each withheld credential whose ``issued`` record landed after all, so that
        the log does not read as if someone held it; how many were revoked. Stops at the
        first store failure: the rest wait for the next pass.

        Raises:
            DependencyUnavailableError: the store is still failing.
        """
        revoked = 0
        now = self._clock.now()
        for watched in self.withheld.due():
            state = await self._grants.request(watched.request_id)
            if state is None or state.get("status") not in IN_FORCE:
                if state is not None or now >= watched.until:
                    self.withheld.settle(watched.request_id)
                continue
            # An issuer that fails to revoke: recorded as such, and the reconciler retries it.
            with contextlib.suppress(IssuanceError):
                await self.revoke_grant(
                    watched.request_id,
                    state,
                    by=WITHHELD_BY,
                    reason=WITHHELD_REASON,
                    source=WITHHELD_SOURCE,
                )
            self.withheld.settle(watched.request_id)
            revoked += 1
        return revoked

    async def _record_failure(
        self, request_id: RequestId, exc: GrantlineError, state: Mapping[str, str]
    ) -> None:
        data = {"code": exc.code, "message": exc.message}
        effects = Effects(
            request={"status": Status.FAILED.value}, index_remove=(Index.AWAITING_ISSUE,)
        )
        try:
            failed = records.draft(
                request_id, Event.FAILED, self._clock.now(), data, state, effects=effects
            )
            await self._ledger.append([failed])
        except GrantlineError:
            log.exception("could not record the failure of request %s", request_id)

    async def _revoke_quietly(self, issuer: CredentialIssuer, credential: IssuedCredential) -> None:
        try:
            await issuer.revoke(credential.handle)
        except GrantlineError:
            log.exception("could not revoke unrecorded credential %s", credential.fingerprint)

    async def _deny(
        self, requested: Draft, decision: Decision, now: datetime, state: Mapping[str, str]
    ) -> RequestOutcome:
        request_id = RequestId(requested.request_id)
        reasons = list(decision.reasons) or ["policy did not allow the request"]
        effects = Effects(request={"status": Status.DENIED.value, "reasons": json.dumps(reasons)})
        denied = records.draft(
            request_id, Event.DENIED, now, {"reasons": reasons}, state, effects=effects
        )
        evaluated = records.evaluated(request_id, decision, now, state)
        await self._ledger.append([requested, evaluated, denied])
        return RequestOutcome(request_id, Status.DENIED, decision)

    async def _hold_for_approval(
        self,
        requested: Draft,
        decision: Decision,
        requirement: Requirement,
        now: datetime,
        state: Mapping[str, str],
        *,
        policy_input: Mapping[str, Any],
    ) -> RequestOutcome:
        request_id = RequestId(requested.request_id)
        deadline = now + timedelta(seconds=self.settings.approval_window_seconds)
        evaluated = records.pending(
            request_id,
            decision,
            requirement,
            now,
            deadline=deadline,
            state=state,
            policy_input=policy_input,
        )
        await self._ledger.append([requested, evaluated])
        details = {
            "subject": state.get("subject"),
            "role": state.get("role"),
            "target": state.get("target"),
            "required": [{"group": f.group, "count": f.count} for f in requirement.factors],
            "expires_at": format_time(deadline),
        }
        self.notifier.notify("pending_approval", request_id, details)
        return RequestOutcome(
            request_id,
            Status.PENDING_APPROVAL,
            decision,
            requirement=requirement,
            deadline=deadline,
        )

    async def describe(self, caller: Identity, request_id: str) -> dict[str, Any]:
        """The request's status and summary, never the credential.

        Readable by whom it is for, who asked (an agent), auditors, and while it waits for
        approval, the members of the groups it waits for.
        """
        state = await self._readable_state(caller, request_id, approvers_too=True)
        return self.summary(request_id, state)

    def summary(self, request_id: str, state: Mapping[str, str]) -> dict[str, Any]:
        hidden = {
            "handle",
            "active_member",
            "active_key",
            "approval",
            "approvals",
            "pickup",
            "policy_input",
            "issuer_config",
        }
        summary: dict[str, Any] = {
            "request_id": request_id,
            **{k: v for k, v in state.items() if k not in hidden},
        }
        for key in ("reasons", "actors"):
            if key in summary:
                summary[key] = json.loads(summary[key])
        if "ttl_seconds" in summary:
            summary["ttl_seconds"] = int(summary["ttl_seconds"])
        if records.BREAK_GLASS in summary:
            summary[records.BREAK_GLASS] = True
        if "approval" in state:
            requirement = Requirement.parse(json.loads(state["approval"]))
            approvals = approvals_of(state)
            summary["approval"] = {
                "required": [f.as_dict() for f in requirement.factors],
                "missing": requirement.missing(approvals),
                "approvals": [a.as_dict() for a in approvals],
            }
        summary["status"] = self.effective_status(state)
        if "pickup" in state:
            summary["credential_ready"] = (
                state["pickup"] == "waiting" and summary["status"] == Status.ISSUED.value
            )
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

    async def records(
        self, caller: Identity, after: int, limit: int, selection: Selection | None = None
    ) -> tuple[list[tuple[int, bytes]], int]:
        """Up to ``limit`` records after ``after``, those ``selection`` keeps; and the seq to
        go on after (the last one looked at, selected or not)."""
        self.require_auditor(caller, "read the whole log")
        rows = await self._log.read(after, limit)
        scanned = rows[-1][0] if rows else after
        if selection is None or selection.everything:
            return rows, scanned
        return await selection.select(rows, self._grants), scanned

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
            await self._record_revocation_failure(
                request_id, state, by=by, reason=reason, source=source, exc=exc
            )
            raise IssuanceError(
                f"{exc.message}. The grant stays in force and the revocation will be retried.",
                code="revocation_pending",
            ) from exc
        now = self._clock.now()
        data = {"by": by, "reason": reason, "source": source}
        effects = records.ended(state, now, extra={"revoked_by": by})
        await self._ledger.append(
            [records.draft(request_id, Event.REVOKED, now, data, state, effects=effects)]
        )
        self.notifier.notify("revoked", request_id, {"by": by, "reason": reason, "source": source})
        return {"request_id": request_id, "status": Status.REVOKED.value, "already": False}

    async def _record_revocation_failure(
        self,
        request_id: str,
        state: Mapping[str, str],
        *,
        by: str,
        reason: str,
        source: str,
        exc: IssuanceError,
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
        failed = records.draft(
            request_id, Event.REVOCATION_FAILED, now, data, state, effects=effects
        )
        await self._ledger.append([failed])

    async def record_end(
        self, request_id: str, state: Mapping[str, str], event: Event, data: Mapping[str, Any]
    ) -> None:
        """Record that a grant ended without the API: it expired, or its issuer dropped it."""
        now = self._clock.now()
        effects = records.ended(state, now, event)
        await self._ledger.append(
            [records.draft(request_id, event, now, data, state, effects=effects)]
        )
        if event == Event.REVOKED:
            self.notifier.notify("revoked", request_id, dict(data))

    async def record_undelivered(
        self, request_id: str, event: str, delivery_id: str, attempts: int, error: str
    ) -> None:
        """Record that a notification about the request never reached its receiver."""
        state = await self._grants.request(request_id) or {}
        data = {"event": event, "delivery_id": delivery_id, "attempts": attempts, "error": error}
        now = self._clock.now()
        await self._ledger.append(
            [records.draft(request_id, Event.NOTIFICATION_FAILED, now, data, state)]
        )

    async def record_outcome(
        self, caller: Identity, request_id: str, report: Mapping[str, Any]
    ) -> int:
        """Record what the action a grant served did; the record's seq.

        Raises:
            NotFoundError: no such request the caller may see.
            ForbiddenError: the caller neither asked for the grant nor is its principal.
            ConflictError: no credential was ever issued for the request.
        """
        state = await self._readable_state(caller, request_id)
        if caller.subject not in (state.get("subject"), state.get("requested_by")):
            raise ForbiddenError("only the grant's holder or its principal may report its outcome")
        if state.get("status") not in _ISSUED_ONCE:
            raise ConflictError(
                f"request {request_id} is {state.get('status')}: nothing was issued"
            )
        data = {"by": caller.subject, **report}
        draft = records.draft(request_id, Event.OUTCOME, self._clock.now(), data, state)
        line = (await self._ledger.append([draft]))[0]
        return int(json.loads(line)["seq"])

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: active only for an unexpired token of ours whose grant is still issued."""
        return (await self.introspection(token)).answer

    async def introspection(self, token: str) -> Introspection:
        """:meth:`introspect`, with the grant an expired or revoked token of ours belongs to."""
        claims = self._introspector.claims_of(token, allow_expired=True)
        token_id = claims.get("jti") if claims is not None else None
        if claims is None or not isinstance(token_id, str):
            return Introspection({"active": False})
        request_id = await self._grants.request_for_token(token_id)
        state = await self._grants.request(request_id) if request_id else None
        expires = claims.get("exp")
        expired = not isinstance(expires, int | float) or expires <= self._clock.now().timestamp()
        if state is None or expired or self.effective_status(state) != Status.ISSUED.value:
            return Introspection({"active": False}, request_id)
        return Introspection({"active": True, "token_type": "Bearer", **dict(claims)}, request_id)

    async def _readable_state(
        self, caller: Identity, request_id: str, *, approvers_too: bool = False
    ) -> dict[str, str]:
        state = await self._grants.request(request_id)
        if state is None:
            raise NotFoundError(f"no request {request_id}")
        party = caller.subject in (state.get("subject"), state.get("requested_by"))
        approver = approvers_too and self._may_weigh_in(caller, state)
        if not (party or approver or self.is_auditor(caller)):
            # Same answer as for a missing request: ids of others' requests are not disclosed.
            raise NotFoundError(f"no request {request_id}")
        return state

    def _may_weigh_in(self, caller: Identity, state: Mapping[str, str]) -> bool:
        """Whether the caller is in a group a pending request waits for."""
        if state.get("status") != Status.PENDING_APPROVAL.value or "approval" not in state:
            return False
        requirement = Requirement.parse(json.loads(state["approval"]))
        return any(
            caller.subject in self._policy.group_members(group) for group in requirement.groups()
        )

    def effective_status(self, state: Mapping[str, str]) -> str:
        """The status as of now: a grant past its end, or a pending request past its
        deadline, reads as expired even before the reconciler has recorded it."""
        status = state.get("status", Status.FAILED.value)
        now = self._clock.now()
        expires = state.get("expires_at")
        if status in IN_FORCE and expires and parse_time(expires) <= now:
            return Status.EXPIRED.value
        deadline = state.get("approval_deadline")
        if status == Status.PENDING_APPROVAL.value and deadline and parse_time(deadline) <= now:
            return Status.EXPIRED.value
        return status


def conflicts_of(decision: Decision) -> tuple[str, ...]:
    """The roles an allowing decision says its grant may not be held with
    (``conflicts_with``; none when the policy names none).

    Raises:
        PolicyError: ``conflicts_with`` is not a list of role names.
    """
    named = decision.extra.get("conflicts_with", [])
    if not (isinstance(named, list) and all(isinstance(role, str) for role in named)):
        raise PolicyError("the decision's conflicts_with must be a list of role names")
    return tuple(named)


def approvals_of(state: Mapping[str, str]) -> list[Approval]:
    """The approvals given so far to a pending request."""
    return [
        Approval(entry["approver"], tuple(entry["groups"]))
        for entry in json.loads(state.get("approvals", "[]"))
    ]


def handle_of(state: Mapping[str, str]) -> dict[str, str]:
    """The revocation handle an ``issued`` record left in the request's state (empty if none)."""
    handle: dict[str, str] = json.loads(state.get("handle", "{}"))
    return handle


def _delegation(caller: Identity, principal: Identity | None) -> Delegation | None:
    """Who acts for whom: proven by the principal's own token, or stated in the caller's
    token by the trusted issuer that minted it (an ``act`` claim)."""
    if principal is None:
        return Delegation.in_token(caller)
    if "act" in caller.claims:
        raise InvalidRequestError(
            "the caller's token already acts for someone (act claim): it cannot also "
            "present a subject_token"
        )
    return Delegation.of(principal, caller)
