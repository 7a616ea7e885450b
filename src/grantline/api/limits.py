"""Limits enforced before any parsing or work: the body size (uvicorn and FastAPI set none by
default) and the number of requests in flight (load shedding with a fast 503)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """Answers 413 when Content-Length, or the bytes actually received, exceed ``limit``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _reject(send, self.limit)
            return
        received = 0
        started = rejected = False

        # Past the limit the 413 is sent at once and the app is told the client went away:
        # an exception raised here would reach FastAPI's body parsing, which answers any
        # failure to read the body with a 400.
        async def limited_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                rejected = True
                if not started:
                    await _reject(send, self.limit)
                return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413 was the answer
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, tracking_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Send, limit: int) -> None:
    body = json.dumps(
        {"error": {"code": "payload_too_large", "message": f"request body exceeds {limit} bytes"}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ConcurrencyLimit:
    """Sheds load: past ``limit`` requests in flight in this process, answers a fast 503 in our
    error shape with ``Retry-After``, before the request reaches any route (so nothing about it
    is recorded). uvicorn's own ``limit_concurrency`` counts idle keep-alive connections too and
    answers in plain text, so the count is kept here, per request."""

    def __init__(self, app: ASGIApp, limit: int, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = str(retry_after_seconds).encode()
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await _shed(send, self.retry_after)
            return
        # One event loop per process: no lock is needed around the count.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _shed(send: Send, retry_after: bytes) -> None:
    body = json.dumps(
        {"error": {"code": "overloaded", "message": "too many requests in flight; retry later"}}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"retry-after", retry_after)]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
