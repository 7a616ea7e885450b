"""One reconciliation pass: what the log says against what the issuers really hold.

Each pass, under a store lock so that one replica runs it at a time:

1. grants past their expiry get an ``expired`` record; a Vault credential still alive then
   is drift (``alive_after_end``) and is revoked;
2. live Vault grants are looked up; one gone at Vault is recorded ``revoked`` with source
   ``reconciler`` (``revoked_outside_broker``);
3. revocations that failed at the issuer are retried;
4. allowed requests with no issuance after the configured delay are flagged
   (``approval_without_issuance``);
5. every grant token alive at Vault is matched to its request by its metadata: one the log
   does not know (``issuance_without_approval``), one without its ``issued`` record
   (``issuance_without_record``) or one whose grant ended (``alive_after_end``) is flagged
   and, when settings say so, revoked;
6. requests still waiting for approval past their deadline get an ``expired`` record;
7. break-glass grants not reviewed by their deadline are flagged once
   (``break_glass_unreviewed``).

Normal workflow is never flagged: a request inside its issuance window, a grant token younger
than the grace period (its ``issued`` record may be on its way), a credential that expired on
time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from grantline.broker import Broker, handle_of
from grantline.broker.approvals import Approvals
from grantline.broker.records import marks_of
from grantline.domain.clock import Clock
from grantline.domain.errors import GrantlineError
from grantline.domain.models import IN_FORCE, CredentialType, Event, Status
from grantline.issuers.base import CredentialIssuer, SourceState
from grantline.issuers.vault.client import META_REQUEST_ID, TokenInfo
from grantline.reconcile.alerts import Alerts
from grantline.store.grants import RedisGrants
from grantline.store.keys import Index
from grantline.store.ledger import Draft, Ledger
from grantline.store.log import Effects, to_millis

log = logging.getLogger(__name__)

RECONCILER = "grantline:reconciler"
# How far Vault's clock (and a grant token's own expiry) may run ahead of a recorded expiry.
_END_MARGIN = timedelta(seconds=5)


class GrantTokenInventory(Protocol):
    async def grant_tokens(self) -> list[TokenInfo]:
        """Every live token that carries a Grantline request id."""
        ...

    async def revoke_accessor(self, accessor: str) -> None: ...


class PassLock(Protocol):
    async def acquire(self, seconds: float) -> bool:
        """True when this process may run the pass; the lock lapses after ``seconds``."""
        ...


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    issue_delay_seconds: float = 60.0
    grace_seconds: float = 30.0
    revoke_orphans: bool = True
    lock_seconds: float = 30.0
    # Resource servers report the uses of JWT grants: one that ends without any is reported
    # (``never_used``, a sign of over-provisioning), not alarmed.
    usage_expected: bool = False


@dataclass
class PassReport:
    """What one pass found and did."""

    ran: bool = True
    findings: Counter[str] = field(default_factory=Counter)
    expired: int = 0
    revoked: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "findings": dict(self.findings),
            "expired": self.expired,
            "revoked": self.revoked,
            "errors": self.errors,
        }


class Reconciler:
    def __init__(
        self,
        *,
        broker: Broker,
        approvals: Approvals,
        grants: RedisGrants,
        ledger: Ledger,
        issuers: Mapping[str, CredentialIssuer],
        inventory: GrantTokenInventory | None,
        lock: PassLock,
        alerts: Alerts,
        clock: Clock,
        settings: ReconcileSettings,
    ) -> None:
        self._broker = broker
        self._approvals = approvals
        self._grants = grants
        self._ledger = ledger
        self._issuers = issuers
        self._inventory = inventory
        self._lock = lock
        self._alerts = alerts
        self._clock = clock
        self._settings = settings
        self._running = asyncio.Lock()

    async def run_once(self) -> PassReport:
        """One pass. Raises only when the store is down; issuer failures are reported.

        The store lock keeps other replicas out; the local lock keeps this process's loop
        and an operator's ``/v1/reconcile`` from running passes at the same time.
        """
        if self._running.locked():
            return PassReport(ran=False)
        async with self._running:
            if not await self._lock.acquire(self._settings.lock_seconds):
                return PassReport(ran=False)
            return await self._pass()

    async def _pass(self) -> PassReport:
        report = PassReport()
        await self._expire(report)
        await self._check_live(report)
        await self._retry_revocations(report)
        await self._check_awaiting(report)
        if self._inventory is not None:
            await self._check_inventory(self._inventory, report)
        report.expired += await self._approvals.expire_pending()
        await self._check_reviews(report)
        return report

    # -- 1. expiry -------------------------------------------------------------------------

    async def _expire(self, report: PassReport) -> None:
        # A little grace, so that Vault's own expiry has run before drift is judged.
        grace = min(timedelta(seconds=self._settings.grace_seconds), _END_MARGIN)
        cutoff = self._clock.now() - grace
        for request_id, _ in await self._grants.indexed(Index.LIVE, up_to=to_millis(cutoff)):
            state = await self._grants.request(request_id)
            if state is None or state.get("status") not in IN_FORCE:
                continue
            if await self._source_state(state, report) == SourceState.ALIVE:
                await self._drift(request_id, state, "expired", report)
            data = {"expires_at": state.get("expires_at"), "source": "reconciler"}
            await self._broker.record_end(request_id, state, Event.EXPIRED, data)
            await self._retire_grant_token(state, report)
            report.expired += 1
            if self._settings.usage_expected and _unused_jwt(state):
                message = "the grant expired with no use reported: it may be over-provisioned"
                await self._finding(
                    request_id, "never_used", message, "reported", report, state=state, alert=False
                )

    async def _retire_grant_token(self, state: Mapping[str, str], report: PassReport) -> None:
        # A secret's or certificate's grant token can outlive the lease or certificate it
        # minted (their TTL may be capped lower); once the grant has ended it has no purpose.
        accessor = handle_of(state).get("accessor")
        if self._inventory is not None and isinstance(accessor, str):
            revoking = self._inventory.revoke_accessor(accessor)
            await _attempt(revoking, report, "could not retire a grant token")

    async def _drift(
        self, request_id: str, state: Mapping[str, str], ended: str, report: PassReport
    ) -> None:
        action = await self._revoke_handle(state, report)
        await self._finding(
            request_id,
            "alive_after_end",
            f"the credential was still alive at its issuer after it {ended}",
            action,
            report,
            state=state,
        )

    # -- 2. live grants ----------------------------------------------------------------------

    async def _check_live(self, report: PassReport) -> None:
        for request_id, expires_ms in await self._grants.indexed(Index.LIVE):
            # Near its end a credential may already be gone by Vault's clock (or its grant
            # token's lease): that is expiry, for step 1 to record, not a revocation.
            if expires_ms <= to_millis(self._clock.now() + _END_MARGIN):
                continue
            state = await self._grants.request(request_id)
            # A pending revocation that took effect is the retry's to record (step 3).
            if state is None or state.get("status") != Status.ISSUED.value:
                continue
            if await self._source_state(state, report) != SourceState.GONE:
                continue
            message = "the credential was revoked at its issuer outside the broker"
            await self._finding(
                request_id, "revoked_outside_broker", message, "recorded", report, state=state
            )
            data = {"by": "issuer", "reason": message, "source": "reconciler"}
            await self._broker.record_end(request_id, state, Event.REVOKED, data)

    # -- 3. pending revocations --------------------------------------------------------------

    async def _retry_revocations(self, report: PassReport) -> None:
        for request_id, _ in await self._grants.indexed(Index.REVOKING):
            state = await self._grants.request(request_id)
            if state is None or state.get("status") != Status.REVOCATION_PENDING.value:
                continue
            failure = f"{request_id}: revocation still failing"
            if await self._revoke_handle(state, report, failure) != "revoked":
                continue
            requested_by = state.get("revocation_requested_by", RECONCILER)
            data = {
                "by": requested_by,
                "reason": f"retry of the revocation requested by {requested_by}",
                "source": "reconciler",
            }
            await self._broker.record_end(request_id, state, Event.REVOKED, data)

    # -- 4. allowed, never issued ------------------------------------------------------------

    async def _check_awaiting(self, report: PassReport) -> None:
        cutoff = self._clock.now() - timedelta(seconds=self._settings.issue_delay_seconds)
        for request_id, _ in await self._grants.indexed(
            Index.AWAITING_ISSUE, up_to=to_millis(cutoff)
        ):
            state = await self._grants.request(request_id)
            if state is not None and state.get("status") != Status.APPROVED.value:
                continue
            message = (
                f"allowed, but nothing was issued within {self._settings.issue_delay_seconds:g} s"
            )
            await self._finding(
                request_id,
                "approval_without_issuance",
                message,
                "none",
                report,
                effects=Effects(index_remove=(Index.AWAITING_ISSUE,)),
                state=state,
            )

    # -- 5. Vault's own inventory ------------------------------------------------------------

    async def _check_inventory(self, inventory: GrantTokenInventory, report: PassReport) -> None:
        try:
            tokens = await inventory.grant_tokens()
        except GrantlineError as exc:
            report.errors.append(f"could not list grant tokens: {exc.message}")
            return
        young = self._clock.now() - timedelta(seconds=self._settings.grace_seconds)
        for token in tokens:
            if token.issued_at > young:
                continue  # its issued record may still be on its way
            request_id = token.meta[META_REQUEST_ID]
            state = await self._grants.request(request_id)
            finding = _inventory_finding(token, state)
            if finding is None:
                continue
            code, message = finding
            action = "none"
            if self._settings.revoke_orphans or code == "alive_after_end":
                action = await self._revoke_accessor(inventory, token.accessor, report)
            await self._finding(
                request_id, code, message, action, report, accessor=token.accessor, state=state
            )

    # -- 7. break-glass reviews ------------------------------------------------------------

    async def _check_reviews(self, report: PassReport) -> None:
        now = self._clock.now()
        for request_id, _ in await self._grants.indexed(Index.REVIEW_DUE, up_to=to_millis(now)):
            # Under the request's lock: a review being recorded right now wins.
            async with self._approvals.hold(request_id):
                state = await self._grants.request(request_id)
                if state is None or state.get("review_status") != "review_pending":
                    continue
                message = f"break-glass grant not reviewed by {state.get('review_due_at')}"
                await self._finding(
                    request_id,
                    "break_glass_unreviewed",
                    message,
                    "none",
                    report,
                    effects=Effects(index_remove=(Index.REVIEW_DUE,)),
                    state=state,
                )

    # -- plumbing ----------------------------------------------------------------------------

    def _issuer_of(self, state: Mapping[str, str]) -> CredentialIssuer | None:
        return self._issuers.get(state.get("credential_type", ""))

    async def _source_state(self, state: Mapping[str, str], report: PassReport) -> SourceState:
        issuer = self._issuer_of(state)
        if issuer is None:
            return SourceState.UNTRACKED
        try:
            return await issuer.state_at_source(handle_of(state))
        except GrantlineError as exc:
            report.errors.append(f"could not look up a credential: {exc.message}")
            return SourceState.UNTRACKED

    async def _revoke_handle(
        self, state: Mapping[str, str], report: PassReport, failure: str = "could not revoke"
    ) -> str:
        """Revoke a recorded credential at its issuer; the action, as findings name it."""
        issuer = self._issuer_of(state)
        if issuer is None:
            return "none"
        return await _revoked(issuer.revoke(handle_of(state)), report, failure)

    async def _revoke_accessor(
        self, inventory: GrantTokenInventory, accessor: str, report: PassReport
    ) -> str:
        revoking = inventory.revoke_accessor(accessor)
        return await _revoked(revoking, report, "could not revoke a grant token")

    async def _finding(
        self,
        request_id: str,
        code: str,
        message: str,
        action: str,
        report: PassReport,
        *,
        effects: Effects | None = None,
        accessor: str | None = None,
        state: Mapping[str, str] | None = None,
        alert: bool = True,
    ) -> None:
        data: dict[str, Any] = {
            "finding": code,
            "message": message,
            "action": action,
            **marks_of(state or {}),
        }
        if accessor is not None:
            data["accessor"] = accessor
        draft = Draft(request_id, Event.RECONCILED, self._clock.now(), data, effects or Effects())
        await self._ledger.append([draft])
        report.findings[code] += 1
        if alert:
            await self._alerts.alert(code, request_id, {"message": message, "action": action})


def _unused_jwt(state: Mapping[str, str]) -> bool:
    # Only JWT uses are reported (resource servers, introspection); a Vault credential's
    # are not seen yet, so its silence proves nothing.
    return state.get("credential_type") == CredentialType.JWT.value and not state.get("last_used")


def _inventory_finding(token: TokenInfo, state: Mapping[str, str] | None) -> tuple[str, str] | None:
    if state is None:
        return (
            "issuance_without_approval",
            "a grant token names a request the log does not know",
        )
    status = state.get("status")
    if handle_of(state).get("accessor") == token.accessor:
        if status in IN_FORCE:
            return None
        return ("alive_after_end", f"the grant token is alive although the grant is {status}")
    return (
        "issuance_without_record",
        f"a grant token exists for a request that is {status} with no issued record of it",
    )


async def _attempt(call: Awaitable[None], report: PassReport, failure: str) -> bool:
    """Await an issuer call; a failure is reported, never raised (the pass goes on)."""
    try:
        await call
    except GrantlineError as exc:
        report.errors.append(f"{failure}: {exc.message}")
        return False
    return True


async def _revoked(call: Awaitable[None], report: PassReport, failure: str) -> str:
    if not await _attempt(call, report, failure):
        return "revoke_failed"
    report.revoked += 1
    return "revoked"
