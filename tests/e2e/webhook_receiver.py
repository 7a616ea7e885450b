"""A real local webhook receiver for end-to-end tests: it checks each delivery's signature
the way a user's receiver would, and can be told to fail the first deliveries."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    secret: str
    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    failures_left: int = 0
    attempts: list[str] = field(default_factory=list)  # delivery ids, one per POST
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    @contextlib.contextmanager
    def running(cls, secret: str, fail_first: int = 0) -> Iterator[Receiver]:
        receiver = cls(secret=secret, failures_left=fail_first)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = _Server(("127.0.0.1", port), _Handler)
        server.receiver = receiver
        receiver.url = f"http://127.0.0.1:{port}/hooks/grantline"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield receiver
        finally:
            server.shutdown()
            server.server_close()

    def wait_for(self, event: str, request_id: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for delivered in self.events:
                    if delivered["event"] == event and delivered["request_id"] == request_id:
                        return delivered
            time.sleep(0.05)
        raise AssertionError(f"no {event} webhook for {request_id}; got {self.events}")

    def receive(self, body: bytes, headers: Any) -> int:
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        with self._lock:
            self.attempts.append(str(headers.get("X-Grantline-Delivery")))
            if not hmac.compare_digest(expected, str(headers.get("X-Grantline-Signature"))):
                self.bad_signatures += 1
                return 401
            if self.failures_left > 0:
                self.failures_left -= 1
                return 503
            self.events.append(json.loads(body))
            return 204


class _Server(ThreadingHTTPServer):
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.server.receiver.receive(body, self.headers))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None
