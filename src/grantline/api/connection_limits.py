"""Limits on a request's head, below ASGI: a deadline for the request line and headers, and a
cap on their size, so that slow or endless headers (slowloris) cannot hold a connection.

uvicorn has neither: its keep-alive timeout runs only between requests, and the httptools
parser accepts headers of any size. :class:`GuardedHttpToolsProtocol` adds both, and
:func:`guarded_protocol` hands it to ``uvicorn.run(http=...)`` with its settings (a
``functools.partial`` of a module-level class, so it pickles into worker processes).
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from grantline.domain.errors import InvalidRequestError


class HeadTooLargeError(InvalidRequestError):
    """Raised inside a parser callback to stop parsing a head over the cap (answered 431)."""

    code = "headers_too_large"
    status = 431


def guarded_protocol(header_timeout_seconds: float, max_header_bytes: int) -> Any:
    """The protocol factory for ``uvicorn.run(http=...)``."""
    return functools.partial(
        GuardedHttpToolsProtocol,
        header_timeout_seconds=header_timeout_seconds,
        max_header_bytes=max_header_bytes,
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on each request's head.

    The clock starts when the connection opens and when the first byte of a later request on it
    arrives, and stops when the headers are complete; a head still unfinished at the deadline
    gets a 408 and the connection is closed. A head larger than the cap gets a 431.
    """

    def __init__(
        self, *args: Any, header_timeout_seconds: float, max_header_bytes: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout_seconds
        self._max_header_bytes = max_header_bytes
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes: int | None = None  # None: not inside a request's head
        self._parsed_head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still inside the head after this chunk: everything counted so far is head.
        if self._head_bytes is not None and self._head_bytes > self._max_header_bytes:
            self._refuse(431, "request_headers_too_large", "request headers are too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_head_bytes = 0
        if self._head_bytes is None:
            self._start_head()

    # A head that arrives whole in one read is measured as the parser hands it over: the
    # parser's callback error makes uvicorn answer 400, which send_400_response turns to 431.
    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if self._parsed_head_bytes > self._max_header_bytes:
            self._refuse(431, "request_headers_too_large", "request headers are too large")
        else:
            super().send_400_response(msg)

    def _count_parsed(self, size: int) -> None:
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > self._max_header_bytes:
            raise HeadTooLargeError("the request head is larger than the broker accepts")

    def on_headers_complete(self) -> None:
        self._stop_head()
        super().on_headers_complete()

    def _start_head(self) -> None:
        self._head_bytes = 0
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self._header_timeout, self._head_timed_out)

    def _stop_head(self) -> None:
        self._head_bytes = None
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        # A connection opened and left idle gets no answer; one part-way through a head does.
        if self._head_bytes:
            self._refuse(408, "request_timeout", "request headers took too long")
        elif not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._stop_head()
        if self.transport.is_closing():
            return
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        head = [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
