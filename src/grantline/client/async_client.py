"""The asyncio client of a Grantline broker: :class:`GrantlineClient`, awaited.

Task-safe: :meth:`AsyncGrantlineClient.credential` runs one renewal at a time per distinct
request while the other tasks wait for its result. Use one client per event loop.
"""

from __future__ import annotations

import asyncio
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
from grantline.client.transport import DEFAULT_TIMEOUT_SECONDS, AsyncSender
from grantline.domain.clock import Clock, SystemClock


class AsyncGrantlineClient:
    """Asks a broker for access, as :class:`~grantline.client.GrantlineClient` does, awaited.

    ``token`` is a :class:`TokenSource`, a callable returning a token, or a fixed token.
    ``http_client`` (an ``httpx.AsyncClient`` with your TLS or proxy settings) is used as given
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
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._sender = AsyncSender(
            url, token_source(token), retry or RetryPolicy(), http_client, timeout
        )
        self._cache = GrantCache(renewal or RenewalPolicy(), self._clock)
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def url(self) -> str:
        return self._sender.base_url

    async def request_access(
        self, target: str, role: str, ttl: int | timedelta, **options: Unpack[RequestOptions]
    ) -> Grant | Pending:
        """As :meth:`GrantlineClient.request_access`."""
        return await self._access(calls.access_request(target, role, ttl, options))

    async def credential(
        self, target: str, role: str, ttl: int | timedelta, **options: Unpack[CredentialOptions]
    ) -> Grant:
        """As :meth:`GrantlineClient.credential`."""
        call = calls.access_request(target, role, ttl, options, renewable=True)
        key = calls.cache_key(call)
        grant = self._cache.fresh(key)
        if grant is not None:
            return grant
        async with self._lock_for(key):
            grant = self._cache.fresh(key)  # another task may have renewed it meanwhile
            if grant is not None:
                return grant
            try:
                outcome = await self._access(call)
            except BrokerUnavailableError as exc:
                return self._cache.fall_back(key, exc)
            except Exception:
                self._cache.drop(key)
                raise
            return self._cache.settle(key, outcome)

    async def status(self, request_id: str) -> RequestStatus:
        """As :meth:`GrantlineClient.status`."""
        return calls.read_status(await self._sender.send(calls.status(request_id)))

    async def collect(self, request_id: str) -> Grant:
        """As :meth:`GrantlineClient.collect`."""
        response = await self._sender.send(calls.collect(request_id))
        return calls.read_grant(response, self._clock.now())

    async def wait_for_approval(
        self,
        request: Pending | str,
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_SECONDS,
    ) -> Grant:
        """As :meth:`GrantlineClient.wait_for_approval`."""
        request_id = request.request_id if isinstance(request, Pending) else request
        deadline = None if timeout is None else time.monotonic() + timeout
        while calls.next_step(await self.status(request_id)) is Step.WAIT:
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise ApprovalTimeoutError(
                    f"request {request_id} still waits for approval after {timeout}s",
                    request_id=request_id,
                )
            await asyncio.sleep(poll_interval)
        return await self.collect(request_id)

    async def revoke(self, request: Grant | str, reason: str) -> Revocation:
        """As :meth:`GrantlineClient.revoke`."""
        request_id = request.request_id if isinstance(request, Grant) else request
        self._cache.forget(request_id)
        return calls.read_revocation(await self._sender.send(calls.revoke(request_id, reason)))

    async def report_outcome(
        self,
        request: Grant | str,
        action: str,
        result: OutcomeResult,
        *,
        changed: Sequence[str] = (),
        summary: str | None = None,
    ) -> OutcomeReceipt:
        """As :meth:`GrantlineClient.report_outcome`."""
        request_id = request.request_id if isinstance(request, Grant) else request
        call = calls.outcome(request_id, action, result, changed, summary)
        return calls.read_outcome(await self._sender.send(call))

    async def approve(self, request_id: str, reason: str) -> RequestStatus:
        """As :meth:`GrantlineClient.approve`."""
        return calls.read_status(
            await self._sender.send(calls.decide(request_id, "approve", reason))
        )

    async def reject(self, request_id: str, reason: str) -> RequestStatus:
        """As :meth:`GrantlineClient.reject`."""
        return calls.read_status(
            await self._sender.send(calls.decide(request_id, "reject", reason))
        )

    async def introspect(self, token: str) -> dict[str, Any]:
        """As :meth:`GrantlineClient.introspect`."""
        return calls.read_introspection(await self._sender.send(calls.introspect(token)))

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _access(self, call: Call) -> Grant | Pending:
        return calls.read_access(await self._sender.send(call), self._clock.now())

    def _lock_for(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())
