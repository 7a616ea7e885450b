"""Signed webhook notifications, queued without waiting and delivered by background workers.

``Notifier.notify()`` only puts a notification on a bounded queue, so nothing on the request path
waits for a receiver or fails because of one. Workers POST each notification through one shared
``httpx.AsyncClient`` and retry connection errors, timeouts, 408, 429 and 5xx with capped,
jittered exponential backoff. A notification that cannot be delivered is handed to
``on_give_up``; one that finds the queue full is dropped. Every outcome is counted
(:mod:`grantline.notify.metrics`). Logs name the receiver by scheme, host and path only:
neither the secret nor a query string (which may hold a token) is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx

from grantline.domain.clock import Clock, SystemClock
from grantline.domain.errors import ConfigError
from grantline.domain.models import format_time
from grantline.notify.metrics import TOTALS, watch

log = logging.getLogger("grantline.notify")

SIGNATURE_HEADER = "X-Grantline-Signature"
EVENT_HEADER = "X-Grantline-Event"
DELIVERY_HEADER = "X-Grantline-Delivery"

# Jitter needs no secrecy; SystemRandom only keeps the shared global generator out of it.
_JITTER = random.SystemRandom()
# The envelope is written over the details so that no detail can pass for another event.
_ENVELOPE = ("event", "request_id", "at", "delivery_id")


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``: what a webhook receiver checks."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(slots=True, eq=False)
class Notification:
    """One event for the receiver. ``delivery_id`` is the same on every retry, for deduplication."""

    event: str
    request_id: str
    details: Mapping[str, Any]
    delivery_id: str
    at: str
    attempts: int = 0  # POSTs made so far

    def body(self) -> bytes:
        """The JSON body, keys sorted. Raises ``TypeError`` or ``ValueError`` for bad details."""
        payload = {**self.details}
        payload.update(
            zip(_ENVELOPE, (self.event, self.request_id, self.at, self.delivery_id), strict=True)
        )
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


GiveUp = Callable[[Notification, str], Awaitable[None]]


class _Attempt(NamedTuple):
    delivered: bool
    retryable: bool = False
    error: str = ""
    retry_after: float | None = None


_DELIVERED = _Attempt(delivered=True)


class Notifier:
    """Webhook notifications for one receiver; disabled (every call a no-op) without a URL.

    Call ``notify()`` from the event loop's thread; ``start()`` once the loop runs and
    ``close()`` at shutdown. Raises ``ConfigError`` for a URL that is not http(s) with a host,
    or for limits below 1.
    """

    def __init__(
        self,
        *,
        url: str | None,
        secret: str | None,
        attempts: int = 6,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        queue_size: int = 10_000,
        on_give_up: GiveUp | None = None,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        if min(attempts, queue_size, workers) < 1:
            raise ConfigError("webhook attempts, queue size and workers must be at least 1")
        self._url = _checked(url) if url else None
        self._where = _loggable(self._url) if self._url else ""
        self._secret = secret or None
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._timeout = timeout_seconds
        self._on_give_up = on_give_up
        self._worker_count = workers
        self._clock = clock or SystemClock()
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(maxsize=queue_size)
        # Taken from the queue, neither delivered nor given up yet: what close() abandons.
        self._in_flight: set[Notification] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._redact = _RedactUrl(self._url, self._where) if self._url else None
        self._closed = False
        self._last_drop_warning = -float("inf")
        self._drops_since_warning = 0
        if self._url and not self._secret:
            log.warning("webhooks to %s are sent unsigned: no secret is set", self._where)
        watch(self)

    @property
    def enabled(self) -> bool:
        return self._url is not None

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def notify(self, event: str, request_id: str, details: Mapping[str, Any] | None = None) -> None:
        """Queue a notification and return at once. Never raises; a full queue drops it."""
        if self._url is None:
            return
        if self._closed:
            self._drop("the notifier is closed", event, request_id)
            return
        try:
            at = format_time(self._clock.now())
            notification = Notification(event, request_id, dict(details or {}), _new_id(), at)
            self._queue.put_nowait(notification)
        except asyncio.QueueFull:
            self._drop("the queue is full", event, request_id)
        except Exception:  # a notification is never worth failing the caller's request over
            log.exception("webhook notification %s for %s not queued", event, request_id)
            self._drop("it could not be queued", event, request_id)

    async def start(self) -> None:
        """Start the delivery workers (once; a disabled or closed notifier starts nothing)."""
        if self._url is None or self._workers or self._closed:
            return
        if self._redact is not None:
            logging.getLogger("httpx").addFilter(self._redact)
        # A redirect is not followed: the receiver is the configured address and no other.
        self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        self._workers = [
            asyncio.create_task(self._work(), name=f"grantline-webhook-{n}")
            for n in range(self._worker_count)
        ]

    async def close(self, drain_seconds: float = 2.0) -> None:
        """Deliver what is queued for up to ``drain_seconds``, then stop; the rest is dropped."""
        self._closed = True
        workers, self._workers = self._workers, []
        try:
            if workers and drain_seconds > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._queue.join(), drain_seconds)
        finally:
            await self._stop(workers)

    async def _stop(self, workers: list[asyncio.Task[None]]) -> None:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        abandoned = len(self._in_flight) + self._empty_queue()
        self._in_flight.clear()
        if abandoned:
            TOTALS.dropped += abandoned
            log.warning(
                "%d webhook notification(s) to %s undelivered at close", abandoned, self._where
            )
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._redact is not None:
            logging.getLogger("httpx").removeFilter(self._redact)

    # -- delivery ----------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            notification = await self._queue.get()
            self._in_flight.add(notification)
            try:
                await self._deliver(notification)
            except Exception as exc:
                # A worker outlives any surprise: the next notification still gets its chance.
                log.exception("webhook delivery %s failed unexpectedly", notification.delivery_id)
                if notification in self._in_flight:
                    await self._give_up(notification, f"unexpected {type(exc).__name__}")
            finally:
                self._queue.task_done()

    async def _deliver(self, notification: Notification) -> None:
        try:
            body = notification.body()
        except (TypeError, ValueError) as exc:
            await self._give_up(notification, f"the details are not JSON ({type(exc).__name__})")
            return
        headers = self._headers(notification, body)
        outcome = _Attempt(delivered=False, error="not attempted")
        for attempt in range(self._attempts):
            if attempt:
                TOTALS.retries += 1
                await asyncio.sleep(self._delay(attempt - 1, outcome.retry_after))
            notification.attempts += 1
            outcome = await self._post(body, headers)
            if outcome.delivered:
                self._in_flight.discard(notification)
                TOTALS.delivered += 1
                return
            if not outcome.retryable:
                break
        await self._give_up(
            notification, f"{outcome.error} after {notification.attempts} attempt(s)"
        )

    def _headers(self, notification: Notification, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: notification.event,
            DELIVERY_HEADER: notification.delivery_id,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(body, self._secret)
        return headers

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> _Attempt:
        if self._client is None or self._url is None:
            return _Attempt(delivered=False, error="the notifier is closed")
        try:
            # An overall deadline too: httpx's timeouts are per read, and a receiver could drip.
            async with (
                asyncio.timeout(self._timeout),
                self._client.stream("POST", self._url, content=body, headers=headers) as response,
            ):
                # The body is never read: the status is the whole answer.
                status, retry_after = response.status_code, response.headers.get("Retry-After")
        except (TimeoutError, httpx.HTTPError, httpx.InvalidURL) as exc:
            return _failed(exc)
        if 200 <= status < 300:
            return _DELIVERED
        retryable = status >= 500 or status in (408, 429)
        return _Attempt(False, retryable, f"HTTP {status}", _seconds(retry_after))

    def _delay(self, retry: int, retry_after: float | None) -> float:
        ceiling = min(self._max_backoff, self._backoff * 2.0 ** min(retry, 32))
        delay = _JITTER.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._max_backoff))
        return delay

    async def _give_up(self, notification: Notification, error: str) -> None:
        self._in_flight.discard(notification)
        TOTALS.failed += 1
        log.warning(
            "webhook %s for %s (delivery %s) to %s given up: %s",
            notification.event,
            notification.request_id,
            notification.delivery_id,
            self._where,
            error,
        )
        if self._on_give_up is None:
            return
        try:
            await self._on_give_up(notification, error)
        except Exception:
            log.exception("the webhook give-up handler failed for %s", notification.delivery_id)

    # -- bookkeeping -------------------------------------------------------------------------

    def _drop(self, reason: str, event: str, request_id: str) -> None:
        TOTALS.dropped += 1
        self._drops_since_warning += 1
        # At most one warning a second: a full queue under load must not flood the log too.
        now = time.monotonic()
        if now - self._last_drop_warning >= 1.0:
            log.warning(
                "webhook %s for %s dropped because %s (%d dropped since the last warning)",
                event,
                request_id,
                reason,
                self._drops_since_warning,
            )
            self._last_drop_warning, self._drops_since_warning = now, 0

    def _empty_queue(self) -> int:
        emptied = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            emptied += 1
        return emptied


class _RedactUrl(logging.Filter):
    """httpx logs every request's full URL at INFO; ours may carry a token in its query string."""

    def __init__(self, url: str, shown: str) -> None:
        super().__init__()
        self._url = httpx.URL(url)
        self._shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        # Only URL objects are compared: comparing a str would parse it, and a filter must not fail.
        if isinstance(record.args, tuple) and any(map(self._ours, record.args)):
            record.args = tuple(self._shown if self._ours(arg) else arg for arg in record.args)
        return True

    def _ours(self, arg: object) -> bool:
        return isinstance(arg, httpx.URL) and arg == self._url


def _failed(exc: Exception) -> _Attempt:
    """Connection errors, timeouts and a dropped connection are transient; the rest is not."""
    if isinstance(exc, TimeoutError):
        return _Attempt(delivered=False, retryable=True, error="Timeout")
    permanent = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
    transient = isinstance(exc, httpx.TransportError) and not isinstance(exc, permanent)
    return _Attempt(delivered=False, retryable=transient, error=type(exc).__name__)


def _checked(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    # The URL itself is left out of the message: its query string may hold a token.
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError("the webhook URL must be an absolute http(s) URL with a host")
    return url


def _loggable(url: str) -> str:
    """Scheme, host, port and path: no credentials, query string or fragment."""
    return str(httpx.URL(url).copy_with(userinfo=b"", query=None, fragment=None))


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` in seconds; its HTTP-date form is ignored (backoff applies)."""
    if retry_after is None or not retry_after.strip().isdigit():
        return None
    return float(retry_after.strip())


def _new_id() -> str:
    return str(uuid.uuid4())
