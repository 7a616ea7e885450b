"""Usage reporting at a resource server: which grant was used, for what, and with what outcome.

:meth:`UsageReporter.record` only appends to a bounded buffer in memory; a background thread
(an asyncio task for :class:`AsyncUsageReporter`) sends what is buffered to the broker
(``POST /v1/usage``) in batches, so reporting adds no network round trip to a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import threading
from collections import deque
from datetime import datetime
from typing import Literal, NamedTuple, Self, get_args

import httpx

from grantline.client import calls
from grantline.client.calls import Call
from grantline.client.errors import GrantlineClientError
from grantline.client.models import UsageReceipt
from grantline.client.retry import RetryPolicy
from grantline.client.tokens import TokenInput, token_source
from grantline.client.transport import DEFAULT_TIMEOUT_SECONDS, AsyncSender, SyncSender
from grantline.domain.clock import Clock, SystemClock
from grantline.domain.models import format_time

log = logging.getLogger(__name__)

Outcome = Literal["allowed", "denied", "error"]
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
MAX_BATCH = 500  # the most observations the broker takes in one report
MAX_OPERATION_CHARS = 64
MAX_RESOURCE_CHARS = 256
MAX_REASON_CHARS = 64
# Nobody waits on a report, so it may wait longer for the broker than a caller would; the
# broker ignores a batch_id it has seen, so every retry is harmless.
USAGE_RETRY = RetryPolicy(attempts=5, backoff_seconds=0.5, max_backoff_seconds=10.0)


class Observation(NamedTuple):
    """One use of a grant as the resource server saw it. A tuple: it is made on the request
    path, where a frozen dataclass costs twice as much."""

    jti: str
    operation: str
    resource: str | None
    outcome: Outcome
    at: datetime
    reason: str | None = None  # why a use was refused: the verifier's code (expired, ...)

    def body(self) -> dict[str, str]:
        body = {"jti": self.jti, "operation": self.operation, "outcome": self.outcome}
        if self.resource:
            body["resource"] = self.resource
        if self.reason:
            body["reason"] = self.reason
        body["at"] = format_time(self.at)
        return body


def observation(  # noqa: PLR0917 — the fields of one Observation, in order
    jti: str,
    operation: str,
    resource: str | None,
    outcome: Outcome,
    at: datetime,
    reason: str | None = None,
) -> Observation:
    """An observation the broker will take: an overlong operation or resource is cut to the
    API's limit rather than have the whole batch refused. Raises ValueError for an empty
    ``jti`` or ``operation`` or an unknown ``outcome``."""
    if not jti or not isinstance(jti, str):
        raise ValueError("jti: the grant's token id, a non-empty string")
    if not operation or not isinstance(operation, str):
        raise ValueError("operation: a non-empty string, such as GET or s3:GetObject")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome is one of {sorted(OUTCOMES)}, not {outcome!r}")
    return Observation(
        jti,
        operation[:MAX_OPERATION_CHARS],
        resource[:MAX_RESOURCE_CHARS] if resource else None,
        outcome,
        at,
        reason[:MAX_REASON_CHARS] if reason else None,
    )


class Batch(NamedTuple):
    """Observations sent together, under one id that every retry of them repeats."""

    batch_id: str
    observations: tuple[Observation, ...]

    def call(self) -> Call:
        return calls.usage(self.batch_id, [o.body() for o in self.observations])


class UsageBuffer:
    """The observations waiting to be sent, oldest first, at most ``capacity``: when full,
    the oldest is dropped (and counted) to make room. Thread-safe."""

    def __init__(self, capacity: int, batch_size: int) -> None:
        if capacity < 1 or not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"capacity is at least 1, batch_size from 1 to {MAX_BATCH}")
        self.batch_size = batch_size
        self.dropped = 0
        self._capacity = capacity
        self._waiting: deque[Observation] = deque()
        self._lock = threading.Lock()
        self._closed = False

    def add(self, observation: Observation) -> bool:
        """Buffer ``observation``; True when another full batch is waiting to be sent."""
        with self._lock:
            if self._closed:
                self.dropped += 1
                return False
            if len(self._waiting) >= self._capacity:
                self._waiting.popleft()
                self.dropped += 1
            self._waiting.append(observation)
            return len(self._waiting) % self.batch_size == 0

    def take(self) -> Batch | None:
        """The oldest observations, a batch of them at most, under a new batch id."""
        with self._lock:
            count = min(len(self._waiting), self.batch_size)
            taken = tuple(self._waiting.popleft() for _ in range(count))
        # 24 characters of [A-Za-z0-9_-], as the API asks; unguessable so that no other
        # resource server's batch can collide with it inside the broker's 24 h window.
        return Batch(secrets.token_urlsafe(18), taken) if taken else None

    def batches_waiting(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def close(self) -> None:
        """From now on every observation added is dropped."""
        with self._lock:
            self._closed = True

    def __len__(self) -> int:
        return len(self._waiting)


class _Reporter:
    """What both reporters share: the buffer, the counters, and what a sent batch counts."""

    def __init__(
        self,
        flush_seconds: float,
        batch_size: int,
        capacity: int,
        clock: Clock | None,
    ) -> None:
        if flush_seconds <= 0:
            raise ValueError("flush_seconds must be positive")
        self.flush_seconds = flush_seconds
        self.sent = 0
        self.failed = 0
        self.unknown = 0
        self._buffer = UsageBuffer(capacity, batch_size)
        self._clock = clock or SystemClock()

    def record(
        self,
        jti: str,
        operation: str,
        resource: str | None = None,
        outcome: Outcome = "allowed",
        reason: str | None = None,
    ) -> None:
        """Note one use of the grant ``jti`` (``reason``: why it was refused); never does
        I/O. Sent within ``flush_seconds``, or sooner once a batch is full. Raises
        ValueError as :func:`observation`."""
        seen = observation(jti, operation, resource, outcome, self._clock.now(), reason)
        if self._buffer.add(seen):
            self._batch_ready()

    @property
    def dropped(self) -> int:
        """Observations never sent because the buffer was full (or the reporter closed)."""
        return self._buffer.dropped

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def _batch_ready(self) -> None:
        raise NotImplementedError

    def _delivered(self, batch: Batch, receipt: UsageReceipt) -> None:
        self.sent += len(batch.observations)
        self.unknown += len(receipt.unknown)
        if receipt.unknown:
            log.warning(
                "usage batch %s: the broker never issued %d of the reported token ids",
                batch.batch_id,
                len(receipt.unknown),
            )

    def _gave_up(self, batch: Batch, error: GrantlineClientError) -> None:
        # The message is the broker's error message or the client's: it never holds a token.
        self.failed += len(batch.observations)
        log.warning(
            "usage batch %s of %d observations not sent: %s",
            batch.batch_id,
            len(batch.observations),
            error,
        )


class UsageReporter(_Reporter):
    """Reports the use of grants to the broker from a background daemon thread. Thread-safe.

    ``url`` is the broker's; ``token`` this resource server's own identity (it must be in
    the policy group ``resource-servers``). ``flush_seconds``: the longest an observation
    waits in the buffer; a full batch (``batch_size``) is sent at once. ``capacity``: the
    most observations buffered; beyond it the oldest are dropped and counted in
    :attr:`dropped`. A batch is retried (same ``batch_id``) on transport failures, 429 and
    503 as ``retry`` allows, then given up and counted in :attr:`failed`; :attr:`sent`
    counts the observations the broker acknowledged. Call :meth:`close` at shutdown.
    """

    def __init__(
        self,
        url: str,
        token: TokenInput,
        *,
        flush_seconds: float = 5.0,
        batch_size: int = MAX_BATCH,
        capacity: int = 10_000,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        http_client: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(flush_seconds, batch_size, capacity, clock)
        self._sender = SyncSender(
            url, token_source(token), retry or USAGE_RETRY, http_client, timeout
        )
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._send_lock = threading.Lock()  # one batch in flight: flush() and the thread
        self._thread = threading.Thread(target=self._run, name="grantline-usage", daemon=True)
        self._thread.start()

    def flush(self) -> None:
        """Send what is buffered now; returns once each batch was sent or given up."""
        with self._send_lock:
            for _ in range(self._buffer.batches_waiting()):
                batch = self._buffer.take()
                if batch is None:
                    return
                self._send(batch)

    def close(self) -> None:
        """Stop the thread and send what is left; records made after this are dropped."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._wake.set()
        self._thread.join()
        self._buffer.close()
        self.flush()
        self._sender.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _batch_ready(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                # The thread must outlive any surprise (a token source's own error): without
                # it the buffer would only ever drop.
                log.exception("usage reporting failed; trying again in %s s", self.flush_seconds)

    def _send(self, batch: Batch) -> None:
        try:
            receipt = calls.read_usage(self._sender.send(batch.call()))
        except GrantlineClientError as exc:
            self._gave_up(batch, exc)
        else:
            self._delivered(batch, receipt)


class AsyncUsageReporter(_Reporter):
    """:class:`UsageReporter` for asyncio servers: the sender is a task of the running loop,
    started by the first :meth:`record` (or :meth:`start`). Call :meth:`record` from the
    loop's own thread; close with :meth:`aclose`."""

    def __init__(
        self,
        url: str,
        token: TokenInput,
        *,
        flush_seconds: float = 5.0,
        batch_size: int = MAX_BATCH,
        capacity: int = 10_000,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(flush_seconds, batch_size, capacity, clock)
        self._sender = AsyncSender(
            url, token_source(token), retry or USAGE_RETRY, http_client, timeout
        )
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def record(
        self,
        jti: str,
        operation: str,
        resource: str | None = None,
        outcome: Outcome = "allowed",
        reason: str | None = None,
    ) -> None:
        """As :meth:`UsageReporter.record`; starts the sending task on first use."""
        super().record(jti, operation, resource, outcome, reason)
        if self._task is None:
            self.start()

    def start(self) -> None:
        """Start the sending task on the running loop. Raises RuntimeError outside one."""
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="grantline-usage")

    async def flush(self) -> None:
        """As :meth:`UsageReporter.flush`."""
        async with self._send_lock:
            for _ in range(self._buffer.batches_waiting()):
                batch = self._buffer.take()
                if batch is None:
                    return
                await self._send(batch)

    async def aclose(self) -> None:
        """Stop the task and send what is left; records made after this are dropped."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._buffer.close()
        await self.flush()
        await self._sender.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _batch_ready(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                # As in UsageReporter._run: the task must not end while the server runs.
                log.exception("usage reporting failed; trying again in %s s", self.flush_seconds)

    async def _send(self, batch: Batch) -> None:
        try:
            receipt = calls.read_usage(await self._sender.send(batch.call()))
        except GrantlineClientError as exc:
            self._gave_up(batch, exc)
        else:
            self._delivered(batch, receipt)
