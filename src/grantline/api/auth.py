"""The bearer-token dependency: every /v1 call proves who the caller is."""

from __future__ import annotations

from fastapi import Request

from grantline.api import ratelimit
from grantline.config import Runtime
from grantline.domain.errors import AuthenticationError
from grantline.domain.models import Identity


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def caller(request: Request) -> Identity:
    """The verified caller. Raises AuthenticationError (401) for a missing or bad token.

    Async on purpose: FastAPI runs a plain ``def`` dependency in a thread pool, and the hand-off
    per request costs more than the verification itself.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("an 'Authorization: Bearer <identity JWT>' header is required")
    runtime = runtime_of(request)
    identity = runtime.verifier.verify(token.strip())
    await ratelimit.check(runtime.rate_limits, identity)
    return identity
