"""Approvals of pending requests, collection of what they issue, and break-glass reviews.

Each change to a request happens under its request lock, so two approvers on two replicas
cannot both see "one more needed" and leave a met quorum unissued, nor both issue it.
Whether an approver may approve is the policy's (``data.grantline.approval``); whether the
approvals so far meet the quorum is counted here (domain/approvals.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from grantline.broker import records
from grantline.broker.access import (
    Broker,
    GrantState,
    Ledger,
    RequestOutcome,
    Sealer,
    approvals_of,
    conflicts_of,
)
from grantline.broker.decisions import (
    approval_evidence,
    approval_groups,
    approval_verdict,
    route,
)
from grantline.domain.approvals import Approval, Requirement
from grantline.domain.clock import Clock
from grantline.domain.errors import (
    ConflictError,
    DutiesConflictError,
    ForbiddenError,
    GoneError,
    GrantlineError,
    NotFoundError,
)
from grantline.domain.models import (
    CredentialType,
    Decision,
    Event,
    Identity,
    RequestId,
    ReviewStatus,
    Status,
    act_claim,
    format_time,
    parse_time,
)
from grantline.domain.policy_input import active_grants_input, identity_input
from grantline.issuers.base import GrantSpec
from grantline.store.keys import Index
from grantline.store.ledger import Draft
from grantline.store.log import Effects, to_millis

log = logging.getLogger(__name__)

REVIEWERS = "reviewers"
MAX_LISTED = 1000
# Each candidate costs a policy evaluation on the event loop (about 0.5 ms).
MAX_ELIGIBLE = 50


class RequestLocks(Protocol):
    def hold(self, request_id: str) -> Any:
        """An async context manager holding the request's lock."""
        ...


class Pickups(Protocol):
    async def peek(self, request_id: str) -> bytes | None: ...


class Opener(Sealer, Protocol):
    def open(self, request_id: str, sealed: str | bytes) -> dict[str, Any]: ...


class IndexedGrants(GrantState, Protocol):
    async def indexed(
        self, name: Index, *, up_to: int | float = ..., limit: int = ...
    ) -> list[tuple[str, int]]: ...


class Approvals:
    def __init__(
        self,
        *,
        broker: Broker,
        grants: IndexedGrants,
        ledger: Ledger,
        locks: RequestLocks,
        pickups: Pickups,
        box: Opener,
        clock: Clock,
    ) -> None:
        self._broker = broker
        self._grants = grants
        self._ledger = ledger
        self._locks = locks
        self._pickups = pickups
        self._box = box
        self._clock = clock

    # -- reading ---------------------------------------------------------------------------

    async def view_of(self, outcome: RequestOutcome) -> dict[str, Any]:
        """What a request just put on hold waits for. The request is recorded already, so a
        failure to list who may approve it leaves ``eligible`` out rather than fail the call."""
        requirement = outcome.requirement or Requirement(())
        view: dict[str, Any] = {
            "required": [f.as_dict() for f in requirement.factors],
            "missing": requirement.missing([]),
            "approvals": [],
            "expires_at": format_time(outcome.deadline) if outcome.deadline else None,
        }
        try:
            state = await self._state(outcome.request_id)
            view["eligible"] = await self._eligible(outcome.request_id, state, requirement, [])
        except GrantlineError as exc:
            log.warning("could not list the approvers of %s: %s", outcome.request_id, exc.message)
        return view

    async def _view(self, request_id: str, state: Mapping[str, str]) -> dict[str, Any]:
        requirement = _requirement(state)
        approvals = approvals_of(state)
        return {
            "required": [f.as_dict() for f in requirement.factors],
            "missing": requirement.missing(approvals),
            "eligible": await self._eligible(request_id, state, requirement, approvals),
            "approvals": [a.as_dict() for a in approvals],
            "expires_at": state.get("approval_deadline"),
        }

    async def _eligible(
        self,
        request_id: str,
        state: Mapping[str, str],
        requirement: Requirement,
        approvals: list[Approval],
    ) -> list[str]:
        """Who may still approve, as far as the approval policy says today."""
        short = {entry["group"] for entry in requirement.missing(approvals)}
        candidates = sorted(
            {
                member
                for group in short
                for member in self._broker.policy.group_members(group)
                if member not in {a.approver for a in approvals}
            }
        )[:MAX_ELIGIBLE]
        eligible = []
        for member in candidates:
            decision = await self._evaluate(Identity(member, issuer=""), request_id, state)
            if decision.allow and short & set(approval_groups(decision)):
                eligible.append(member)
        return eligible

    async def pending_for(self, caller: Identity) -> list[dict[str, Any]]:
        """The pending requests the caller may approve now."""
        now = self._clock.now()
        found = []
        for request_id, deadline_ms in await self._grants.indexed(
            Index.PENDING_APPROVAL, limit=MAX_LISTED
        ):
            if deadline_ms <= to_millis(now):
                continue
            state = await self._grants.request(request_id)
            if state is None or state.get("status") != Status.PENDING_APPROVAL.value:
                continue
            approvals = approvals_of(state)
            if caller.subject in {a.approver for a in approvals}:
                continue
            short = {entry["group"] for entry in _requirement(state).missing(approvals)}
            if not any(caller.subject in self._broker.policy.group_members(g) for g in short):
                continue
            decision = await self._evaluate(caller, request_id, state)
            if decision.allow and short & set(approval_groups(decision)):
                found.append(self._broker.summary(request_id, state))
        return found

    # -- approving and rejecting -------------------------------------------------------------

    async def approve(self, caller: Identity, request_id: str, reason: str) -> dict[str, Any]:
        """Count the caller's approval; when the quorum is met, decide again and issue.

        Raises:
            NotFoundError: no such request.
            ForbiddenError: the caller is in no required group, or the approval policy
                refused it (recorded).
            ConflictError: not pending any more, or the caller already approved it.
            IssuanceError: the quorum was met but the issuer failed (recorded).
        """
        async with self._locks.hold(request_id):
            state = await self._pending_state(caller, request_id)
            approvals = approvals_of(state)
            if caller.subject in {a.approver for a in approvals}:
                raise ConflictError(
                    f"{caller.subject} already approved request {request_id}; "
                    "one approver counts once",
                    code="already_approved",
                )
            requirement = _requirement(state)
            decision = await self._admit(caller, request_id, state, reason, "approve")
            groups = tuple(g for g in approval_groups(decision) if g in requirement.groups())
            now = self._clock.now()
            earlier = await self._still_counting(request_id, state, approvals)
            so_far = [*earlier, Approval(caller.subject, groups)]
            given = records.draft(
                request_id,
                Event.APPROVAL_GIVEN,
                now,
                {**_approval_data(caller, reason, decision), "groups": list(groups)},
                state,
                effects=Effects(
                    request={"approvals": json.dumps([a.as_dict() for a in so_far])},
                    keep_input=records.kept_input(decision),
                ),
            )
            if requirement.met(so_far):
                await self._issue(request_id, state, requirement, so_far, given=given, now=now)
            else:
                await self._ledger.append([given])
                self._broker.notifier.notify(
                    "approval_given", request_id, {"approver": caller.subject}
                )
        return await self._answer(request_id)

    async def reject(self, caller: Identity, request_id: str, reason: str) -> dict[str, Any]:
        """Any approver the policy would let approve may reject; the request ends."""
        async with self._locks.hold(request_id):
            state = await self._pending_state(caller, request_id)
            decision = await self._admit(caller, request_id, state, reason, "reject")
            now = self._clock.now()
            data = _approval_data(caller, reason, decision)
            effects = Effects(
                request={"status": Status.REJECTED.value, "rejected_by": caller.subject},
                index_remove=(Index.PENDING_APPROVAL,),
                keep_input=records.kept_input(decision),
            )
            await self._ledger.append(
                [records.draft(request_id, Event.REJECTED, now, data, state, effects=effects)]
            )
            self._broker.notifier.notify(
                "rejected", request_id, {"by": caller.subject, "reason": reason}
            )
        return await self._answer(request_id)

    async def _admit(
        self,
        caller: Identity,
        request_id: str,
        state: Mapping[str, str],
        reason: str,
        action: str,
    ) -> Decision:
        """The approval policy's yes for the caller, or a recorded refusal (403)."""
        if "act" in caller.claims:
            decision = _refusal("approvals are made by people, not by an agent acting for one")
        else:
            decision = await self._evaluate(caller, request_id, state)
        decision = approval_verdict(decision, _requirement(state).groups())
        if decision.allow:
            return decision
        data = {**_approval_data(caller, reason, decision), "action": action}
        refused = records.draft(
            request_id,
            Event.APPROVAL_REFUSED,
            self._clock.now(),
            data,
            state,
            effects=Effects(keep_input=records.kept_input(decision)),
        )
        await self._ledger.append([refused])
        raise ForbiddenError(
            f"{caller.subject} may not {action} request {request_id}: "
            + "; ".join(decision.reasons),
            code="approval_refused",
        )

    async def _still_counting(
        self, request_id: str, state: Mapping[str, str], earlier: list[Approval]
    ) -> list[Approval]:
        """Earlier approvals as the approval policy sees them now: an approver who left a
        required group, or now holds a conflicting role, no longer counts."""
        counting = []
        for approval in earlier:
            decision = await self._evaluate(Identity(approval.approver, ""), request_id, state)
            groups = tuple(g for g in approval_groups(decision) if decision.allow)
            if groups:
                counting.append(Approval(approval.approver, groups))
        return counting

    async def _issue(
        self,
        request_id: str,
        state: Mapping[str, str],
        requirement: Requirement,
        approvals: list[Approval],
        *,
        given: Draft,
        now: datetime,
    ) -> None:
        """Decide again on fresh active grants (the quorum may come long after the request,
        and a conflicting grant may have been issued meanwhile), then issue."""
        decision = await self._decide_again(state, now)
        evaluated = records.evaluated(RequestId(request_id), decision, now, state)
        if not decision.allow:
            reasons = [f"at approval: {reason}" for reason in decision.reasons]
            effects = Effects(
                request={"status": Status.DENIED.value, "reasons": json.dumps(reasons)},
                index_remove=(Index.PENDING_APPROVAL,),
            )
            denied = records.draft(
                request_id, Event.DENIED, now, {"reasons": reasons}, state, effects=effects
            )
            await self._ledger.append([given, evaluated, denied])
            self._broker.notifier.notify("denied", request_id, {"reasons": reasons})
            return
        issuer = self._broker.issuer_for(state["credential_type"])
        data = {
            "by": "approvers",
            "approvers": requirement.assign(approvals),
            "requirement": {
                "all_of": [{"group": f.group, "count": f.count} for f in requirement.factors]
            },
            "policy_digest": decision.policy_digest,
        }
        approved = records.approved(request_id, now, data, state, external=issuer.external)
        actors = _actors(state)
        spec = GrantSpec(
            request_id=RequestId(request_id),
            subject=state["subject"],
            role=state["role"],
            target=state["target"],
            ttl_seconds=int(state["ttl_seconds"]),
            now=now,
            actor=act_claim(actors) if actors else None,
            issuer_config=self._broker.issuer_config(state["role"], decision.extra),
            key_thumbprint=state.get("cnf_jkt", ""),
        )
        try:
            await self._broker.issue(
                issuer,
                spec,
                [given, evaluated, approved],
                state,
                sealer=self._box,
                conflicts=conflicts_of(decision),
            )
        except DutiesConflictError:
            return  # recorded as denied, with the approval that met the quorum
        self._broker.notifier.notify(
            "approved",
            request_id,
            {"approvers": [a.approver for a in approvals], "subject": state["subject"]},
        )

    async def _decide_again(self, state: Mapping[str, str], now: datetime) -> Decision:
        policy_input = dict(json.loads(state["policy_input"]))
        active = await self._grants.active_for(state["subject"], now)
        policy_input["active_grants"] = active_grants_input(active)
        policy_input["now"] = format_time(now)
        decision = await self._broker.decide(policy_input)
        # Routed as the first decision was, so that an approval block the policy now gets
        # wrong denies rather than issues.
        return route(decision, role=state["role"], break_glass=False)[0]

    # -- collecting ----------------------------------------------------------------------------

    async def collect(self, caller: Identity, request_id: str) -> dict[str, Any]:
        """Hand an approved credential to whoever asked for it, once.

        The credential is opened first and removed in the same atomic write as the
        ``collected`` record, so it is never lost unrecorded nor recorded twice.

        Raises NotFoundError (not the requester's), ConflictError (not issued yet),
        GoneError (already collected, ended, or never waiting) or IntegrityError (this
        broker's pickup key does not open it: replicas must share ``keys/pickup.key``).
        """
        async with self._locks.hold(request_id):
            state = await self._grants.request(request_id)
            requester = state.get("requested_by", state.get("subject")) if state else None
            if state is None or caller.subject != requester:
                raise NotFoundError(f"no request {request_id}")
            sealed = await self._pickups.peek(request_id)
            status = self._broker.effective_status(state)
            if sealed is None or status != Status.ISSUED.value:
                raise self._not_collectable(request_id, state, status)
            secret = self._box.open(request_id, sealed)
            now = self._clock.now()
            effects = Effects(
                request={"pickup": "collected", "collected_at": format_time(now)},
                drop_pickup=True,
            )
            await self._ledger.append(
                [
                    records.draft(
                        request_id,
                        Event.COLLECTED,
                        now,
                        {"by": caller.subject},
                        state,
                        effects=effects,
                    )
                ]
            )
        credential_type = state.get("credential_type", CredentialType.JWT.value)
        return {
            "request_id": request_id,
            "status": Status.ISSUED.value,
            "credential": {"type": credential_type, **secret},
        }

    def _not_collectable(self, request_id: str, state: Mapping[str, str], status: str) -> Exception:
        if status == Status.PENDING_APPROVAL.value:
            return ConflictError(
                f"request {request_id} is still waiting for approval", code="not_approved_yet"
            )
        if state.get("pickup") == "collected":
            return GoneError(f"the credential of request {request_id} was already collected")
        if "pickup" not in state and status == Status.ISSUED.value:
            return GoneError(
                f"the credential of request {request_id} was returned when it was issued"
            )
        return GoneError(f"request {request_id} is {status}: there is no credential to collect")

    # -- break-glass review --------------------------------------------------------------------

    async def review(self, caller: Identity, request_id: str, reason: str) -> dict[str, Any]:
        """Record the post-incident review of a break-glass grant (group ``reviewers``)."""
        if "act" in caller.claims:
            raise ForbiddenError("reviews are made by people, not by an agent acting for one")
        if caller.subject not in self._broker.policy.group_members(REVIEWERS):
            raise ForbiddenError(
                f"only members of data.grantline.groups.{REVIEWERS} may review break-glass grants"
            )
        async with self._locks.hold(request_id):
            state = await self._state(request_id)
            if state.get(records.BREAK_GLASS) != "1":
                raise ConflictError(f"request {request_id} is not a break-glass request")
            if caller.subject in (state.get("subject"), state.get("requested_by")):
                raise ForbiddenError("nobody reviews their own break-glass grant")
            if state.get("review_status") == ReviewStatus.REVIEWED.value:
                raise ConflictError(
                    f"request {request_id} was already reviewed by {state.get('reviewed_by')}"
                )
            now = self._clock.now()
            effects = Effects(
                request={
                    "review_status": ReviewStatus.REVIEWED.value,
                    "reviewed_by": caller.subject,
                    "reviewed_at": format_time(now),
                },
                index_remove=(Index.REVIEW_DUE,),
            )
            data = {"by": caller.subject, "reason": reason}
            await self._ledger.append(
                [records.draft(request_id, Event.REVIEWED, now, data, state, effects=effects)]
            )
            return await self._answer(request_id)

    # -- expiry of pending requests --------------------------------------------------------------

    async def expire_pending(self) -> int:
        """Record ``expired`` for pending requests past their deadline; how many."""
        now = self._clock.now()
        expired = 0
        for request_id, _ in await self._grants.indexed(
            Index.PENDING_APPROVAL, up_to=to_millis(now), limit=MAX_LISTED
        ):
            async with self._locks.hold(request_id):
                state = await self._grants.request(request_id)
                if state is not None and await self._expire_if_due(request_id, state):
                    expired += 1
        return expired

    async def _expire_if_due(self, request_id: str, state: Mapping[str, str]) -> bool:
        deadline = state.get("approval_deadline")
        now = self._clock.now()
        if state.get("status") != Status.PENDING_APPROVAL.value or not deadline:
            return False
        if parse_time(deadline) > now:
            return False
        missing = _requirement(state).missing(approvals_of(state))
        data = {"phase": Status.PENDING_APPROVAL.value, "deadline": deadline, "missing": missing}
        effects = Effects(
            request={"status": Status.EXPIRED.value, "expired_at": format_time(now)},
            index_remove=(Index.PENDING_APPROVAL,),
        )
        await self._ledger.append(
            [records.draft(request_id, Event.EXPIRED, now, data, state, effects=effects)]
        )
        self._broker.notifier.notify("expired", request_id, {"phase": "pending_approval"})
        return True

    def hold(self, request_id: str) -> Any:
        """The request's lock, for other changes to it (the reconciler's findings)."""
        return self._locks.hold(request_id)

    # -- plumbing --------------------------------------------------------------------------------

    async def _state(self, request_id: str) -> dict[str, str]:
        state = await self._grants.request(request_id)
        if state is None:
            raise NotFoundError(f"no request {request_id}")
        return state

    async def _pending_state(self, caller: Identity, request_id: str) -> dict[str, str]:
        """The request, if the caller may weigh in and it still waits for approvers.

        Callers in none of the groups it waits for are refused before anything about the
        request is told or recorded; its parties are refused by the policy, and recorded.
        """
        state = await self._state(request_id)
        if "approval" in state and not self._concerns(caller, state):
            groups = ", ".join(_requirement(state).groups())
            raise ForbiddenError(
                f"{caller.subject} is in none of the groups request {request_id} waits for "
                f"({groups})",
                code="approval_refused",
            )
        if await self._expire_if_due(request_id, state):
            raise ConflictError(
                f"request {request_id} expired waiting for approval", code="not_pending"
            )
        status = self._broker.effective_status(state)
        if status != Status.PENDING_APPROVAL.value:
            raise ConflictError(
                f"request {request_id} is {status}, no longer pending approval",
                code="not_pending",
            )
        return state

    def _concerns(self, caller: Identity, state: Mapping[str, str]) -> bool:
        parties = {state.get("subject"), state.get("requested_by"), *_actors(state)}
        members = (
            caller.subject in self._broker.policy.group_members(group)
            for group in _requirement(state).groups()
        )
        return caller.subject in parties or any(members)

    async def _evaluate(
        self, approver: Identity, request_id: str, state: Mapping[str, str]
    ) -> Decision:
        now = self._clock.now()
        active = await self._grants.active_for(approver.subject, now)
        approval_input = {
            "approver": identity_input(approver),
            "approver_active_grants": [grant.as_policy_input() for grant in active],
            "request": {
                "request_id": request_id,
                "subject": state.get("subject", ""),
                "requested_by": state.get("requested_by", state.get("subject", "")),
                "actors": _actors(state),
                "role": state.get("role", ""),
                "target": state.get("target", ""),
                "ttl_seconds": int(state.get("ttl_seconds", "0")),
                "credential_type": state.get("credential_type", ""),
            },
            "approval": _requirement(state).as_dict(),
            "now": format_time(now),
        }
        return await self._broker.decide_approval(approval_input)

    async def _answer(self, request_id: str) -> dict[str, Any]:
        state = await self._state(request_id)
        answer = self._broker.summary(request_id, state)
        if answer["status"] == Status.PENDING_APPROVAL.value:
            answer["approval"] = await self._view(request_id, state)
        return answer


def _requirement(state: Mapping[str, str]) -> Requirement:
    if "approval" not in state:
        raise ConflictError("the request does not wait for approval", code="not_pending")
    return Requirement.parse(json.loads(state["approval"]))


def _actors(state: Mapping[str, str]) -> list[str]:
    actors: list[str] = json.loads(state.get("actors", "[]"))
    return actors


def _refusal(reason: str) -> Decision:
    """A refusal the broker gives without asking the policy (nothing to replay)."""
    return Decision(allow=False, reasons=(reason,), policy_digest="", input_digest="")


def _approval_data(caller: Identity, reason: str, decision: Decision) -> dict[str, Any]:
    return {
        "approver": records.identity_evidence(caller),
        "reason": reason,
        "decision": approval_evidence(decision),
    }
