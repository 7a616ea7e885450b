"""The ASGI middleware that gives each HTTP request its ids and, when traces are on, its span.

The correlation id is the caller's ``X-Request-Id`` when it is a short token, else a new
random one; it is echoed in the response's ``X-Request-Id`` and carried by every log line
of the request, uvicorn's access line included (logged while the response starts).
"""

from __future__ import annotations

import itertools
import os
import re
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grantline.observe import context
from grantline.observe.context import RequestIds
from grantline.observe.metrics import observe_http
from grantline.observe.tracing import Tracing

HEADER = b"x-request-id"
# Anything else a caller sends is replaced, not logged: no log injection, no huge ids.
_CALLER_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# The access request a path is about (API and auditor pages).
_ABOUT_ONE = ("/v1/access-requests/", "/ui/requests/")
_PATH_ID = re.compile(r"/(?:v1/access-requests|ui/requests)/([0-9A-Za-z-]{8,64})(?:/|$)")
# Made-up ids: unique, not secret, and cheap (no system call on the request path): a random
# prefix per process, then a counter.
_PREFIX = os.urandom(8).hex()
_SEQUENCE = itertools.count(1)


class _Response:
    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 500  # until the app starts a response: it failed before answering


class RequestContext:
    """Per HTTP request: its ids, its HTTP metrics (route template and status), its span."""

    def __init__(self, app: ASGIApp, tracing: Tracing | None = None) -> None:
        self.app = app
        self._tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        ids = RequestIds(correlation_id(scope["headers"]), _request_id_in(scope["path"]))
        echoed = (HEADER, ids.correlation_id.encode("ascii"))
        response = _Response()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        token = context.enter(ids)
        try:
            if self._tracing is None:
                await self.app(scope, receive, send_with_id)
            else:
                await self._traced(self._tracing, scope, receive, send_with_id, response)
        finally:
            context.leave(token)
            route = getattr(scope.get("route"), "path", "unmatched")
            observe_http(scope["method"], route, response.status, perf_counter() - started)

    async def _traced(
        self, tracing: Tracing, scope: Scope, receive: Receive, send: Send, response: _Response
    ) -> None:
        method = scope["method"]
        ids = context.current()
        with tracing.server(method, scope["path"], scope["headers"]) as span:
            if ids is not None:
                span.set_attribute("grantline.correlation_id", ids.correlation_id)
            try:
                await self.app(scope, receive, send)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", response.status)
                if ids is not None and ids.request_id is not None:
                    span.set_attribute("grantline.request_id", ids.request_id)
                if response.status >= 500:
                    tracing.fail(span, str(response.status))


def correlation_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-Id`` if it is a short token, else a new random id."""
    for name, value in headers:
        if name == HEADER and _CALLER_ID.fullmatch(value):
            return value.decode("ascii")
    return f"{_PREFIX}{next(_SEQUENCE):016x}"


def _request_id_in(path: str) -> str | None:
    if not path.startswith(_ABOUT_ONE):
        return None
    found = _PATH_ID.match(path)
    return found.group(1) if found else None
