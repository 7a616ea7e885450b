"""Micro benchmark: what the observability instruments add to one access request.

Times each stand-in around a collaborator that does nothing (so only the instrument is
measured): the request middleware, the timed policy engine, issuer and ledger append, and
the outcome counter of the observed broker; their sum is the per-request overhead of a
JWT grant with traces off. Also the cost of one JSON log line (uvicorn's access line),
which is logging rather than instrumentation, and of the instruments with traces on (SDK,
in-memory exporter).

    python bench/bench_observability.py [--rounds 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from grantline.domain.models import (
    CredentialType,
    Decision,
    Fingerprint,
    IssuedCredential,
    RequestId,
    Status,
)
from grantline.issuers.base import GrantSpec, SourceState
from grantline.observe import context
from grantline.observe.context import RequestIds
from grantline.observe.http import RequestContext
from grantline.observe.instruments import TimedIssuer, TimedLedger, TimedPolicyEngine
from grantline.observe.logs import JsonFormatter, RedactSecrets, RequestIdsFilter
from grantline.observe.metrics import ACCESS_REQUESTS, observe_http
from grantline.observe.outcomes import outcome_labels
from grantline.observe.tracing import Tracing
from grantline.store.ledger import Draft, Ledger

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DECISION = Decision(True, (), "sha256:p", "sha256:i", extra={"rule": "rbac"})
CREDENTIAL = IssuedCredential(
    CredentialType.JWT, Fingerprint("sha256:f"), NOW, NOW + timedelta(60), {}, {"token": "x"}
)
SPEC = GrantSpec(RequestId("01a20b7e-e92e-71e6-9f55-25e9812c9c26"), "s", "r", "t", 60, NOW)
DRAFTS = [Draft(SPEC.request_id, "requested", NOW, {})] * 4
SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/access-requests",
    "headers": [(b"host", b"grantline"), (b"authorization", b"Bearer x"), (b"accept", b"*/*")],
}


class NoEngine:
    blocking = False
    digest = "sha256:p"

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        return DECISION

    def evaluate_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        return DECISION

    def ready(self) -> bool:
        return True

    def group_members(self, group: str) -> frozenset[str]:
        return frozenset()

    def role_config(self, role: str) -> Mapping[str, Any]:
        return {}

    def bundle_files(self, digest: str) -> Mapping[str, bytes] | None:
        return None


class NoIssuer:
    credential_type = CredentialType.JWT
    external = False

    async def mint(self, spec: GrantSpec) -> IssuedCredential:
        return CREDENTIAL

    async def revoke(self, handle: Mapping[str, str]) -> None:
        return None

    async def state_at_source(self, handle: Mapping[str, str]) -> SourceState:
        return SourceState.UNTRACKED


class NoLedger(Ledger):
    def __init__(self) -> None:
        pass

    async def append(self, drafts: Sequence[Draft]) -> list[bytes]:
        return [b""] * len(drafts)


class TimedNoLedger(TimedLedger, NoLedger):
    def __init__(self, tracing: Tracing | None) -> None:
        NoLedger.__init__(self)
        self._tracing = tracing


class FormerMetrics:
    """The HTTP-metrics middleware that RequestContext took over, as it was."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            observe_http(scope["method"], route, status, time.perf_counter() - started)


async def bare_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def ignore(message: Any) -> None:
    return None


async def nothing() -> Any:
    return {"type": "http.request"}


# The best of a few repeats, as timeit does: on a shared machine the slow runs measure the
# neighbours, not the code.
REPEATS = 5


def per_call(rounds: int, call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(rounds):
            call()
        best = min(best, time.perf_counter() - started)
    return best / rounds * 1e6


async def per_await(rounds: int, call: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(rounds):
            await call()
        best = min(best, time.perf_counter() - started)
    return best / rounds * 1e6


async def in_request(call: Callable[[], Awaitable[object]]) -> object:
    """``call`` inside a request context, as the broker's collaborators run."""
    token = context.enter(RequestIds("c", claimable=True))
    try:
        return await call()
    finally:
        context.leave(token)


def record_outcome() -> None:
    ACCESS_REQUESTS.inc(outcome_labels(Status.ISSUED, DECISION))
    context.note_request_id(SPEC.request_id)


async def measure(rounds: int, tracing: Tracing | None) -> dict[str, float]:
    """Microseconds an instrument adds to a call, over the bare call."""
    engine, timed_engine = NoEngine(), TimedPolicyEngine(NoEngine(), tracing)
    issuer, timed_issuer = NoIssuer(), TimedIssuer(NoIssuer(), tracing)
    ledger, timed_ledger = NoLedger(), TimedNoLedger(tracing)
    middleware, former = RequestContext(bare_app, tracing), FormerMetrics(bare_app)

    async def traced(call: Callable[[], Awaitable[object]]) -> float:
        if tracing is None:
            return await per_await(rounds, call)
        # Child spans need a request span around them, as in a served request.
        with tracing.server("POST", "/v1/access-requests", []):
            return await per_await(rounds, call)

    results = {
        # Over the HTTP-metrics middleware it replaced (ids, echo header and context added).
        "request middleware": await per_await(rounds, lambda: middleware(SCOPE, nothing, ignore))
        - await per_await(rounds, lambda: former(SCOPE, nothing, ignore)),
        "policy evaluation": await traced(_sync(lambda: timed_engine.evaluate({})))
        - per_call(rounds, lambda: engine.evaluate({})),
        "issuance": await traced(lambda: in_request(lambda: timed_issuer.mint(SPEC)))
        - await per_await(rounds, lambda: in_request(lambda: issuer.mint(SPEC))),
        "log append": await traced(lambda: in_request(lambda: timed_ledger.append(DRAFTS)))
        - await per_await(rounds, lambda: in_request(lambda: ledger.append(DRAFTS))),
        "outcome counter": per_call(rounds, record_outcome),
    }
    results["total per grant"] = sum(results.values())
    return results


def _sync(call: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        return call()

    return run


def log_line_cost(rounds: int) -> float:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdsFilter())
    handler.addFilter(RedactSecrets())
    access = logging.getLogger("bench.uvicorn.access")
    access.propagate = False
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    args = ("127.0.0.1:5", "POST", "/v1/access-requests", "1.1", 201)
    token = context.enter(RequestIds("c", SPEC.request_id))
    try:
        return per_call(rounds, lambda: access.info('%s - "%s %s HTTP/%s" %d', *args))
    finally:
        context.leave(token)


def in_memory_tracing() -> Tracing:
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
        InMemorySpanExporter,
    )

    class Dropping(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            return super().export(())

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Dropping()))
    return Tracing(provider)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200_000)
    rounds = parser.parse_args().rounds
    off = asyncio.run(measure(rounds, None))
    on = asyncio.run(measure(max(rounds // 10, 1000), in_memory_tracing()))
    print(f"{'added per call (µs)':<24}{'traces off':>12}{'traces on':>12}")
    for name, value in off.items():
        print(f"{name:<24}{value:>12.2f}{on[name]:>12.2f}")
    print(f"{'one JSON log line':<24}{log_line_cost(rounds // 4):>12.2f}")


if __name__ == "__main__":
    main()
