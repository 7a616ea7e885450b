"""The per-caller rate limit at the API: 429 with ``Retry-After`` before any work is done, so a
refused call leaves no record. The counts live in Redis (``store/ratelimit.py``)."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from grantline.api.errors import error_response
from grantline.domain.errors import GrantlineError
from grantline.domain.models import Identity
from grantline.store.ratelimit import RedisRateLimits


class RateLimitedError(GrantlineError):
    code = "rate_limited"
    status = 429

    def __init__(self, per_minute: int, retry_after_seconds: int) -> None:
        super().__init__(f"more than {per_minute} calls a minute; retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


async def check(limits: RedisRateLimits | None, identity: Identity) -> None:
    """Counts the call against the caller's limit, if there is one.

    Raises:
        RateLimitedError: the caller is over its limit.
        DependencyUnavailableError: the store did not answer.
    """
    if limits is None:
        return
    wait = await limits.take(identity.issuer, identity.subject)
    if wait > 0:
        raise RateLimitedError(limits.per_minute, max(1, math.ceil(wait)))


async def _rate_limited(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitedError)  # noqa: S101 — registered for this type only
    headers = {"Retry-After": str(exc.retry_after_seconds)}
    return error_response(exc.status, exc.code, exc.message, headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RateLimitedError, _rate_limited)
