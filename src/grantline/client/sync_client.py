"""The blocking client of a Grantline broker, for workloads, jobs and agents.

Thread-safe: one client may serve many threads, and :meth:`GrantlineClient.credential`
runs one renewal at a time per distinct request while the other threads wait for its result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from grantline.client import calls
from grantline.client.calls import (
    DEFAULT_POLL_SECONDS,
    Call,
    CredentialOptions,
    OutcomeResult,
    RequestOptions,
    Step,
)
from grantline.client.errors import ApprovalTimeoutError, BrokerUnavailableError
from grantline.client.models import Grant, OutcomeReceipt, Pending, RequestStatus, Revocation
from grantline.client.renewal import GrantCache, RenewalPolicy
from grantline.client.retry import RetryPolicy
from grantline.client.tokens import TokenSource, token_source
from grantline.client.transport import DEFAULT_TIMEOUT_SECONDS, SyncSender
from grantline.domain.clock import Clock, SystemClock


class GrantlineClient:
    """Asks a broker for access as the identity its token source gives.

    ``token`` is a :class:`TokenSource`, a callable returning a token, or a fixed token.
    ``http_client`` (an ``httpx.Client`` with your TLS or proxy settings) is used as given
    and never closed by this client. Errors are those of :mod:`grantline.client.errors`.
    """

    def __init__(
        self,
        url: str,
        token: TokenSource | Callable[[], str] | str,
        *,
        renewal: RenewalPolicy | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        http_client: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._sender = SyncSender(
            url, token_source(token), retry or RetryPolicy(), http_client, timeout
        )
        self._cache = GrantCache(renewal or RenewalPolicy(), self._clock)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @property
    def url(self) -> str:
        return self._sender.base_url

    def request_access(
        self, target: str, role: str, ttl: int | timedelta, **options: Unpack[RequestOptions]
    ) -> Grant | Pending:
        """Ask for access once: a :class:`Grant`, or :class:`Pending` when the role needs
        approval. Never sent twice unless the connection could not be made at all.

        Raises:
            AccessDeniedError: the policy denied it (``reasons``, ``request_id``).
            InvalidRequestError: the broker refused the body (422) or a parameter.
            AuthenticationFailedError: the identity token was refused.
            BrokerUnavailableError: no answer, or 503 (``outcome_unknown`` says whether the
                request may have been acted on).
        """
        return self._access(calls.access_request(target, role, ttl, options))

    def credential(
        self, target: str, role: str, ttl: int | timedelta, **options: Unpack[CredentialOptions]
    ) -> Grant:
        """A grant for this request: the cached one while it is fresh, else a new one.

        A cached grant is renewed once less than the renewal margin of its lifetime is left;
        if the broker is unavailable then, it is still returned until it expires.

        Raises what :meth:`request_access` raises, and ApprovalRequiredError when the role
        needs approval (wait with :meth:`wait_for_approval`).
        """
        call = calls.access_request(target, role, ttl, options, renewable=True)
        key = calls.cache_key(call)
        grant = self._cache.fresh(key)
        if grant is not None:
            return grant
        with self._lock_for(key):
            grant = self._cache.fresh(key)  # another thread may have renewed it meanwhile
            if grant is not None:
                return grant
            try:
                outcome = self._access(call)
            except BrokerUnavailableError as exc:
                return self._cache.fall_back(key, exc)
            except Exception:
                self._cache.drop(key)
                raise
            return self._cache.settle(key, outcome)

    def status(self, request_id: str) -> RequestStatus:
        """The request's status and summary. Raises NotFoundError for another's request."""
        return calls.read_status(self._sender.send(calls.status(request_id)))

    def collect(self, request_id: str) -> Grant:
        """The credential of an approved request, handed out once.

        Raises ConflictError while it still waits, CredentialGoneError once collected.
        """
        response = self._sender.send(calls.collect(request_id))
        return calls.read_grant(response, self._clock.now())

    def wait_for_approval(
        self,
        request: Pending | str,
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_SECONDS,
    ) -> Grant:
        """Poll until the request is approved, then collect its credential.

        With no ``timeout``, waits until the broker decides (a request not approved within
        its approval window expires).

        Raises:
            RequestClosedError: rejected, expired or otherwise ended (an AccessDeniedError).
            ApprovalTimeoutError: ``timeout`` seconds passed; the request still waits.
            CredentialGoneError: it was approved but collected already.
        """
        request_id = request.request_id if isinstance(request, Pending) else request
        deadline = None if timeout is None else time.monotonic() + timeout
        while calls.next_step(self.status(request_id)) is Step.WAIT:
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise ApprovalTimeoutError(
                    f"request {request_id} still waits for approval after {timeout}s",
                    request_id=request_id,
                )
            time.sleep(poll_interval)
        return self.collect(request_id)

    def revoke(self, request: Grant | str, reason: str) -> Revocation:
        """Revoke a grant (harmless if done already) and drop it from the cache.

        Raises ConflictError when the request holds nothing to revoke, BrokerUnavailableError
        (``code`` ``revocation_pending``) when the issuer failed: the broker retries it.
        """
        request_id = request.request_id if isinstance(request, Grant) else request
        self._cache.forget(request_id)
        return calls.read_revocation(self._sender.send(calls.revoke(request_id, reason)))

    def report_outcome(
        self,
        request: Grant | str,
        action: str,
        result: OutcomeResult,
        *,
        changed: Sequence[str] = (),
        summary: str | None = None,
    ) -> OutcomeReceipt:
        """Record what the action this grant served did, as an ``outcome`` record on its
        lineage: ``action`` (what was done), ``result`` (``succeeded``, ``failed`` or
        ``partial``), what it ``changed`` (up to 32 names) and a ``summary``. Sent once:
        each report is a record of its own.

        Raises:
            ConflictError: nothing was ever issued for the request.
            PermissionDeniedError: the caller neither holds the grant nor is its principal.
            InvalidRequestError: the report is out of the API's bounds (422).
        """
        request_id = request.request_id if isinstance(request, Grant) else request
        call = calls.outcome(request_id, action, result, changed, summary)
        return calls.read_outcome(self._sender.send(call))

    def approve(self, request_id: str, reason: str) -> RequestStatus:
        """Approve another's request. Raises PermissionDeniedError or ConflictError when refused."""
        return calls.read_status(self._sender.send(calls.decide(request_id, "approve", reason)))

    def reject(self, request_id: str, reason: str) -> RequestStatus:
        """Reject another's request; it ends."""
        return calls.read_status(self._sender.send(calls.decide(request_id, "reject", reason)))

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: ``{"active": bool, ...claims}`` for a token of this broker."""
        return calls.read_introspection(self._sender.send(calls.introspect(token)))

    def close(self) -> None:
        self._sender.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _access(self, call: Call) -> Grant | Pending:
        return calls.read_access(self._sender.send(call), self._clock.now())

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())
