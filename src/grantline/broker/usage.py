"""Usage evidence: what resource servers report, and what introspection shows, becomes ``used``
records on each grant's lineage.

A use is observed at the broker's time of receipt (the reporter's own time is kept only as
reported), added to its grant's current window (store/usage.py), and each window, once past,
is recorded as one ``used`` record: first and last use, how many, per operation and outcome,
the resources and who reported. A use of a grant no longer in force (revoked or expired) is
counted as ``after_end``: the reconciler's finding of a use outside the approval.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from grantline.broker import records
from grantline.broker.access import Broker, GrantState, Introspection
from grantline.domain.clock import Clock
from grantline.domain.errors import ForbiddenError
from grantline.domain.models import IN_FORCE, Event, Identity, format_time
from grantline.store.ledger import Ledger
from grantline.store.lock import StoreLock
from grantline.store.log import Effects, to_millis
from grantline.store.usage import Observation, RedisUsage, WindowUse

log = logging.getLogger(__name__)

# The policy group whose members may report uses (data.grantline.groups).
RESOURCE_SERVERS = "resource-servers"
OUTCOMES = ("allowed", "denied", "error")
INTROSPECTION = "introspect"
# The reconciler finding of a use (refused or not) after the grant was revoked or expired.
USED_AFTER_END = "used_after_end"
# The finding of a use of an operation or resource the role's declared scope does not list.
USED_OUTSIDE_SCOPE = "used_outside_scope"
# The finding of a key-bound grant presented without its key's proof (cnf).
USED_BY_OTHER_IDENTITY = "used_by_other_identity"
# Refusals of a bound token that say the presenter lacked the key (the verifier's codes).
BINDING_REFUSALS = frozenset({"invalid_dpop_proof", "proof_required"})
# A window is recorded this long after it ends: reports from replicas whose clocks run a
# little behind still land in it.
_GRACE_MS = 2_000


class Alerts(Protocol):
    """Where a finding reaches people (grantline.reconcile.alerts)."""

    async def alert(self, finding: str, request_id: str, details: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class ReportedUse:
    """One use as a resource server reports it: the token's ``jti`` and what was done."""

    jti: str
    operation: str
    outcome: str
    resource: str | None = None
    reason: str | None = None  # why it was refused, as the resource server names it


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    accepted: int
    # Indexes of reported uses whose jti this broker never issued.
    unknown: tuple[int, ...]
    # The batch id was seen before: nothing was counted again.
    duplicate: bool


class UsageRecorder:
    def __init__(
        self,
        *,
        broker: Broker,
        grants: GrantState,
        usage: RedisUsage,
        ledger: Ledger,
        clock: Clock,
        lock: StoreLock,
        alerts: Alerts,
    ) -> None:
        self._broker = broker
        self._grants = grants
        self._usage = usage
        self._ledger = ledger
        self._clock = clock
        self._lock = lock
        self._alerts = alerts

    async def report(
        self, caller: Identity, batch_id: str, uses: Sequence[ReportedUse]
    ) -> ReportOutcome:
        """Count ``uses`` reported by the resource server ``caller``.

        Raises:
            ForbiddenError: ``caller`` is not in the policy's ``resource-servers`` group.
            DependencyUnavailableError: the store failed (nothing, or all, was counted).
        """
        if caller.subject not in self._broker.policy.group_members(RESOURCE_SERVERS):
            raise ForbiddenError(
                f"only resource servers (the policy's {RESOURCE_SERVERS} group) may report usage"
            )
        now = self._clock.now()
        observed: list[Observation] = []
        unknown: list[int] = []
        # A batch holds many uses of few grants: each grant is looked up once.
        grants: dict[str, tuple[str, bool] | None] = {}
        for index, use in enumerate(uses):
            if use.jti not in grants:
                request_id = await self._grants.request_for_token(use.jti)
                ended = request_id is not None and await self._ended(request_id)
                grants[use.jti] = (request_id, ended) if request_id is not None else None
            grant = grants[use.jti]
            if grant is None:
                unknown.append(index)
                continue
            observed.append(_observation(grant[0], now, use, caller.subject, ended=grant[1]))
        fresh = await self._usage.observe(observed, batch_id)
        return ReportOutcome(len(observed) if fresh else 0, tuple(unknown), not fresh)

    async def introspected(self, caller: Identity, result: Introspection) -> None:
        """An introspection of a token of ours is a use seen by ``caller``; of one no longer
        active, a refused use after the grant's end."""
        if result.request_id is None:
            return
        active = result.answer.get("active") is True
        use = ReportedUse("", INTROSPECTION, "allowed" if active else "denied")
        seen = _observation(
            result.request_id, self._clock.now(), use, caller.subject, ended=not active
        )
        await self._usage.observe([seen])

    async def record_closed(self) -> int:
        """Record every window that has ended as a ``used`` record; how many were recorded.
        One replica at a time (a lease): a window is recorded once.

        Raises:
            DependencyUnavailableError: the store failed; the rest wait for the next pass.
        """
        if not await self._lock.acquire(30):
            return 0
        now = self._clock.now()
        recorded = 0
        for member in await self._usage.closed(to_millis(now) - _GRACE_MS):
            window = await self._usage.read(member)
            if window is None:
                continue
            state = await self._grants.request(window.request_id) or {}
            # The request remembers its last use: a grant that ends without one is reported.
            effects = Effects(usage_done=member, request={"last_used": _time(window.last_ms)})
            drafts = [
                records.draft(
                    window.request_id, Event.USED, now, used_data(window), state, effects=effects
                )
            ]
            role = self._broker.policy.role_config(state.get("role", ""))
            findings = _findings(window, role, bound=bool(state.get("cnf_jkt")))
            drafts += [
                records.draft(window.request_id, Event.RECONCILED, now, finding, state)
                for finding in findings
            ]
            await self._ledger.append(drafts)
            for finding in findings:
                await self._alerts.alert(str(finding["finding"]), window.request_id, finding)
            recorded += 1
        return recorded

    async def _ended(self, request_id: str) -> bool:
        state = await self._grants.request(request_id)
        # The broker's own reading: a grant past its expiry is over before it is recorded.
        return state is None or self._broker.effective_status(state) not in IN_FORCE


def _findings(window: WindowUse, role: Mapping[str, Any], *, bound: bool) -> list[dict[str, Any]]:
    """Use outside the approval in one window: after the grant's end, outside the scope its
    role declares, or, for a key-bound grant, by someone without its key."""
    found: list[dict[str, Any]] = []
    others = sum(n for reason, n in window.refusals.items() if reason in BINDING_REFUSALS)
    if bound and others:
        found.append(
            {
                "finding": USED_BY_OTHER_IDENTITY,
                "message": f"{others} uses of a key-bound grant refused for want of its key's "
                "proof: someone other than the grantee presented it",
                "action": "alerted",
            }
        )
    if window.after_end:
        found.append(
            {
                "finding": USED_AFTER_END,
                "message": f"{window.after_end} uses after the grant ended "
                "(revoked or expired), refused or not",
                "action": "alerted",
            }
        )
    outside = outside_scope(window, role.get("scope"))
    if outside:
        found.append(
            {
                "finding": USED_OUTSIDE_SCOPE,
                "message": "used outside the role's declared scope: " + ", ".join(outside),
                "action": "alerted",
                "outside": outside,
            }
        )
    return found


def outside_scope(window: WindowUse, scope: Any) -> list[str]:
    """The operations and resources of ``window`` that the role's ``scope`` does not list
    (resources match its globs); none when the role declares no scope. Introspection is the
    broker's own operation, never outside."""
    if not isinstance(scope, Mapping):
        return []
    outside: list[str] = []
    operations = scope.get("operations")
    if isinstance(operations, list):
        allowed = {str(o) for o in operations} | {INTROSPECTION}
        outside += [f"operation {op}" for op in sorted(window.operations) if op not in allowed]
    patterns = scope.get("resources")
    if isinstance(patterns, list):
        outside += [
            f"resource {resource}"
            for resource in sorted(window.resources)
            if not any(fnmatch.fnmatchcase(resource, str(p)) for p in patterns)
        ]
    return outside


def used_data(window: WindowUse) -> dict[str, object]:
    """The ``used`` record's data: the window, first and last use, and what was done."""
    return {
        "window": {"start": _time(window.start_ms), "end": _time(window.end_ms)},
        "first_use": _time(window.first_ms),
        "last_use": _time(window.last_ms),
        **window.evidence(),
    }


def _observation(
    request_id: str, now: datetime, use: ReportedUse, reporter: str, *, ended: bool
) -> Observation:
    return Observation(
        request_id=request_id,
        at_ms=to_millis(now),
        operation=use.operation,
        resource=use.resource,
        outcome=use.outcome,
        reporter=reporter,
        after_end=ended,
        reason=use.reason,
    )


def _time(millis: int) -> str:
    return format_time(datetime.fromtimestamp(millis / 1000, tz=UTC))
