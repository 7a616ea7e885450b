"""When a failed call is sent again, and after how long.

A call is sent again only when that cannot do harm:

- :attr:`Safety.IDEMPOTENT` calls (reads, introspection, the JWKS, revocation, which the
  API makes harmless to repeat) are retried on any transport failure and on 429, 502, 503
  and 504.
- :attr:`Safety.ONCE` calls (asking for access, approving, collecting a credential, which
  answers once) are retried only when the request certainly never reached the broker: the
  connection could not be made, or no pooled connection was free. A timeout while reading
  the answer, a dropped connection or a 503 may come after the broker minted a credential
  and recorded it; sending the request again would mint a second one, so the error is
  raised with ``outcome_unknown`` set instead.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import httpx

# The broker cannot serve now (or a proxy in front of it says so): worth another try.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# The request was never written to a connection: nothing reached the broker.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Safety(enum.Enum):
    """Whether sending a call twice can have an effect sending it once does not."""

    IDEMPOTENT = "idempotent"
    ONCE = "once"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After``.

    ``attempts`` counts every try, the first included (1: never retry). The n-th retry
    waits a random time up to ``backoff_seconds * 2 ** (n - 1)``, at most
    ``max_backoff_seconds``; a ``Retry-After`` the broker sent is waited for instead, unless
    it is longer than ``max_backoff_seconds``, in which case the error is raised at once.
    """

    attempts: int = 4
    backoff_seconds: float = 0.2
    max_backoff_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts counts the first try too: at least 1")
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ValueError("backoff times cannot be negative")

    def after_error(
        self, safety: Safety, error: httpx.TransportError, attempt: int
    ) -> float | None:
        """The delay before trying again after ``error``, or None to give up."""
        if attempt >= self.attempts:
            return None
        if safety is Safety.ONCE and not isinstance(error, _NOT_SENT):
            return None
        return self._backoff(attempt)

    def after_status(
        self, safety: Safety, status: int, attempt: int, retry_after: float | None
    ) -> float | None:
        """The delay before trying again after an answer with ``status``, or None."""
        if safety is not Safety.IDEMPOTENT or status not in RETRYABLE_STATUSES:
            return None
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_backoff_seconds else None
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        # Full jitter spreads the retries of many workloads after a broker restart; it is
        # not a security value.
        return random.uniform(0, ceiling)  # noqa: S311


NO_RETRY = RetryPolicy(attempts=1)


def may_have_reached(error: httpx.TransportError) -> bool:
    """Whether the request may have reached the broker before ``error``."""
    return not isinstance(error, _NOT_SENT)
