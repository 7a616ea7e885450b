"""Which cached grant :meth:`credential` may hand out, and when it asks for a new one.

A grant is renewed (a new request, a new grant: a credential cannot be extended) once less
than the renewal margin of its lifetime is left. When asking again fails because the broker
is unavailable, the cached grant is still handed out for as long as it has not expired: the
margin exists for exactly that. Any other failure (a denial, a refused token) drops it.
No I/O here. A short lock guards the table; the clients serialise renewals themselves, so
that one renewal at a time runs per request.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from grantline.client.errors import ApprovalRequiredError, BrokerUnavailableError
from grantline.client.models import Grant, Pending
from grantline.domain.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    """Renew when ``min(fraction * lifetime, max_margin)`` or less of a grant is left.

    The default renews a 3-second grant 0.6 s before it ends, a 10-minute one 60 s before.
    ``max_margin=None`` renews at ``fraction`` whatever the lifetime.
    """

    fraction: float = 0.2
    max_margin: timedelta | None = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if not 0 <= self.fraction < 1:
            raise ValueError("fraction is the share of the lifetime left: 0 <= fraction < 1")
        if self.max_margin is not None and self.max_margin < timedelta(0):
            raise ValueError("max_margin cannot be negative")

    def margin(self, grant: Grant) -> timedelta:
        margin = grant.lifetime * self.fraction
        return margin if self.max_margin is None else min(margin, self.max_margin)

    def due_at(self, grant: Grant) -> datetime:
        """When the grant is renewed."""
        return grant.expires_at - self.margin(grant)


class GrantCache:
    """Grants by request (see :func:`grantline.client.calls.cache_key`)."""

    def __init__(self, policy: RenewalPolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def fresh(self, key: str) -> Grant | None:
        """The cached grant, unless it is due for renewal."""
        with self._lock:
            grant = self._grants.get(key)
        if grant is None or self._clock.now() >= self.policy.due_at(grant):
            return None
        return grant

    def settle(self, key: str, outcome: Grant | Pending) -> Grant:
        """Keep a new grant. Raises ApprovalRequiredError when the request waits for approval."""
        if isinstance(outcome, Pending):
            self.drop(key)
            raise ApprovalRequiredError(
                f"request {outcome.request_id} waits for approval: use wait_for_approval()",
                pending=outcome,
            )
        with self._lock:
            self._grants[key] = outcome
        return outcome

    def fall_back(self, key: str, error: BrokerUnavailableError) -> Grant:
        """The cached grant while it has not expired, when renewing it failed with ``error``.

        Raises ``error`` when there is none to fall back on.
        """
        with self._lock:
            grant = self._grants.get(key)
        if grant is None or self._clock.now() >= grant.expires_at:
            self.drop(key)
            raise error
        log.warning(
            "could not renew grant %s (%s); using it until it expires at %s",
            grant.request_id,
            error.message,
            grant.expires_at.isoformat(),
        )
        return grant

    def drop(self, key: str) -> None:
        with self._lock:
            self._grants.pop(key, None)

    def forget(self, request_id: str) -> None:
        """Drop the grant of ``request_id`` (it was revoked): it must not be handed out."""
        with self._lock:
            for key in [k for k, g in self._grants.items() if g.request_id == request_id]:
                del self._grants[key]
