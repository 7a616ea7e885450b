"""A TCP proxy on a free loopback port with faults switched on and off while it runs.

Put it between the broker and a real server (Valkey, OpenBao) and break the network there:

- ``latency(s)``: every chunk reaches the other side ``s`` seconds late (order kept; chunks
  are scheduled on arrival, so pipelined chunks do not add up);
- ``blackhole()``: a hung peer. Connections are still accepted, nothing is forwarded either
  way; what was sent waits, as TCP retransmits would, and flows once healed;
- ``drop_new()``: every new connection is reset as soon as it is accepted;
- ``reset_all()``: every established connection is reset now (SO_LINGER 0: a RST, not a FIN),
  to the client and to the server;
- ``cut_replies(after_bytes, times)``: the reply lost in flight. The request reaches the
  server; once the server answers, at most ``after_bytes`` of the answer reach the client
  and the connection is reset. ``times`` cuts only that many replies, then forwards again
  (a client's retry then gets through: the idempotency case);
- ``heal()``: every fault off; held data flows.

One asyncio loop in a daemon thread carries every connection; the methods are called from
any thread. ``close()`` (or leaving the ``with`` block) resets what is still open and stops
the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

_CHUNK = 65536
# One RST on close: SO_LINGER on with a zero timeout.
_LINGER_ZERO = struct.pack("ii", 1, 0)


@dataclass
class ProxyStats:
    """What the proxy did since it started (read from any thread)."""

    accepted: int = 0
    dropped: int = 0
    reset: int = 0
    cut: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


@dataclass
class _Faults:
    latency: float = 0.0
    blackhole: bool = False
    drop_new: bool = False
    cut_after: int | None = None
    cuts_left: int | None = None


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the target."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    reply_bytes: int = 0
    closed: bool = False


class FaultyProxy:
    """A proxy from ``127.0.0.1:<port>`` to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.stats = ProxyStats()
        self._faults = _Faults()
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._flowing: asyncio.Event | None = None
        self.port = 0

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> FaultyProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # -- faults --------------------------------------------------------------------------------

    def latency(self, seconds: float) -> None:
        """Each chunk, either way, is forwarded ``seconds`` after it arrived."""
        self._faults.latency = seconds

    def blackhole(self) -> None:
        """Forward nothing, either way, until healed; new connections are still accepted."""
        self._faults.blackhole = True
        self._call(self._set_flowing(flowing=False))

    def drop_new(self) -> None:
        """Reset every new connection as soon as it is accepted."""
        self._faults.drop_new = True

    def reset_all(self) -> int:
        """Reset every established connection now; how many there were."""
        return self._call(self._reset_all())

    def cut_replies(self, after_bytes: int = 0, times: int | None = None) -> None:
        """Let at most ``after_bytes`` of each reply through from now on, then reset the
        connection; only the next ``times`` replies when given."""
        self._call(self._arm_cut(after_bytes, times))

    def heal(self) -> None:
        """Every fault off; data held by a blackhole flows."""
        self._faults.latency = 0.0
        self._faults.drop_new = False
        self._faults.cut_after = None
        self._faults.cuts_left = None
        self._faults.blackhole = False
        self._call(self._set_flowing(flowing=True))

    # -- the loop's side -------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all(count=False)
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if others:
            _, pending = await asyncio.wait(others, timeout=2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _set_flowing(self, *, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _arm_cut(self, after_bytes: int, times: int | None) -> None:
        for link in self._links:
            link.reply_bytes = 0
        self._faults.cut_after = after_bytes
        self._faults.cuts_left = times

    async def _reset_all(self, *, count: bool = True) -> int:
        links = list(self._links)
        for link in links:
            self._abort(link)
        if count:
            self.stats.reset += len(links)
        return len(links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A handler task that ends cancelled makes asyncio's streams log an error: at close,
        # end quietly instead.
        with contextlib.suppress(asyncio.CancelledError):
            await self._carry(reader, writer)

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        if self._faults.drop_new:
            self.stats.dropped += 1
            _rst(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(writer)
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link, reply=False)),
            asyncio.create_task(self._pump(up_reader, writer, link, reply=True)),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        if not link.closed:  # both sides said goodbye: close as they did, with a FIN
            link.closed = True
            self._links.discard(link)
            link.client.close()
            link.server.close()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        link: _Link,
        *,
        reply: bool,
    ) -> None:
        """Read chunks as they come and forward each when due: ``_forward`` keeps the order
        and the latency; reading on while held is what a peer's kernel buffers would do."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        forwarder = asyncio.create_task(self._forward(queue, sink, link, reply=reply))
        try:
            while not link.closed:
                try:
                    data = await source.read(_CHUNK)
                except (ConnectionError, OSError):
                    break
                await queue.put((time.monotonic() + self._faults.latency, data))
                if not data:
                    break
            await forwarder
        finally:
            forwarder.cancel()

    async def _forward(
        self,
        queue: asyncio.Queue[tuple[float, bytes]],
        sink: asyncio.StreamWriter,
        link: _Link,
        *,
        reply: bool,
    ) -> None:
        assert self._flowing is not None
        while not link.closed:
            due, data = await queue.get()
            await self._flowing.wait()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._flowing.wait()  # a blackhole that started meanwhile holds it too
            if link.closed:
                return
            if not data:
                self._half_close(sink)
                return
            if reply and self._cut(link, data, sink):
                return
            self._send(sink, data, reply=reply)
            with contextlib.suppress(ConnectionError, OSError):
                await sink.drain()

    def _cut(self, link: _Link, data: bytes, sink: asyncio.StreamWriter) -> bool:
        """Whether this reply chunk is where the reply is cut (and the link reset)."""
        after = self._faults.cut_after
        if after is None:
            return False
        allowed = after - link.reply_bytes
        if allowed >= len(data):
            link.reply_bytes += len(data)
            return False
        if allowed > 0:
            self._send(sink, data[:allowed], reply=True)
        self.stats.cut += 1
        if self._faults.cuts_left is not None:
            self._faults.cuts_left -= 1
            if self._faults.cuts_left <= 0:
                self._faults.cut_after = None
                self._faults.cuts_left = None
        self._abort(link)
        return True

    def _send(self, sink: asyncio.StreamWriter, data: bytes, *, reply: bool) -> None:
        if sink.is_closing():
            return
        sink.write(data)
        if reply:
            self.stats.bytes_down += len(data)
        else:
            self.stats.bytes_up += len(data)

    @staticmethod
    def _half_close(sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            if sink.can_write_eof() and not sink.is_closing():
                sink.write_eof()

    def _abort(self, link: _Link) -> None:
        if link.closed:
            return
        link.closed = True
        self._links.discard(link)
        _rst(link.client)
        _rst(link.server)
        for task in link.tasks:
            if task is not asyncio.current_task():
                task.cancel()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a RST: the peer's next read or write fails with ECONNRESET."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    writer.transport.abort()
