"""The fault proxy itself, against a local echo server: each fault does what it says."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from tests.faults.proxy import FaultyProxy


class _Echo(socketserver.BaseRequestHandler):
    """Echoes every chunk back and counts what it received."""

    server: _EchoServer

    def handle(self) -> None:
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.server.lock:
                self.server.received += len(data)
            try:
                self.request.sendall(data)
            except OSError:
                return


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.received = 0
        self.lock = threading.Lock()


@pytest.fixture
def echo() -> Iterator[_EchoServer]:
    server = _EchoServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def proxy(echo: _EchoServer) -> Iterator[FaultyProxy]:
    with FaultyProxy("127.0.0.1", echo.server_address[1]) as started:
        yield started


def _connect(proxy: FaultyProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def _roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_it_forwards_both_ways_and_passes_a_close_on(proxy: FaultyProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock, b"hello") == b"hello"
        assert _roundtrip(sock, b"x" * 200_000) == b"x" * 200_000
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""  # the server saw our FIN and closed too
    assert proxy.stats.accepted == 1


def test_latency_delays_each_chunk_each_way(proxy: FaultyProxy) -> None:
    proxy.latency(0.3)
    with _connect(proxy) as sock:
        started = time.monotonic()
        assert _roundtrip(sock, b"ping") == b"ping"
        elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 1.5
    proxy.heal()
    with _connect(proxy) as sock:
        started = time.monotonic()
        assert _roundtrip(sock, b"ping") == b"ping"
        assert time.monotonic() - started < 0.3


def test_a_blackhole_holds_everything_until_healed(proxy: FaultyProxy, echo: _EchoServer) -> None:
    with _connect(proxy) as before:
        assert _roundtrip(before, b"a") == b"a"
        proxy.blackhole()
        before.sendall(b"held")
        with _connect(proxy, timeout=0.5) as during:  # still accepted: a hung peer
            during.sendall(b"also held")
            with pytest.raises(TimeoutError):
                during.recv(10)
        before.settimeout(0.5)
        with pytest.raises(TimeoutError):
            before.recv(10)
        assert echo.received == 1
        proxy.heal()
        before.settimeout(2)
        assert before.recv(10) == b"held"


def test_drop_new_resets_new_connections_and_leaves_established_ones(
    proxy: FaultyProxy,
) -> None:
    with _connect(proxy) as established:
        assert _roundtrip(established, b"a") == b"a"
        proxy.drop_new()
        # The RST may even beat connect() back to the caller.
        with pytest.raises(ConnectionError), _connect(proxy) as refused:
            refused.sendall(b"b")
            if not refused.recv(10):
                raise ConnectionResetError  # closed on us either way
        assert _roundtrip(established, b"c") == b"c"
    assert proxy.stats.dropped == 1
    proxy.heal()
    with _connect(proxy) as again:
        assert _roundtrip(again, b"d") == b"d"


def test_reset_all_sends_a_rst_to_established_connections(proxy: FaultyProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock, b"a") == b"a"
        assert proxy.reset_all() == 1
        time.sleep(0.1)
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"b")
            sock.recv(10)
    assert proxy.stats.reset == 1


def test_a_cut_reply_reaches_the_server_but_not_the_client(
    proxy: FaultyProxy, echo: _EchoServer
) -> None:
    proxy.cut_replies(after_bytes=2, times=1)
    with _connect(proxy) as sock:
        sock.sendall(b"request")
        got = b""
        with pytest.raises(ConnectionResetError):
            while chunk := sock.recv(65536):
                got += chunk
            raise ConnectionResetError  # a FIN instead of a RST would do too
    assert got in (b"", b"re")  # at most the bytes allowed
    assert echo.received == len(b"request")  # the server did get and answer the request
    assert proxy.stats.cut == 1
    # Only one reply was to be cut: the retry gets its answer.
    with _connect(proxy) as retry:
        assert _roundtrip(retry, b"request") == b"request"


def test_close_resets_what_is_open_and_stops_listening(echo: _EchoServer) -> None:
    proxy = FaultyProxy("127.0.0.1", echo.server_address[1]).start()
    sock = _connect(proxy)
    assert _roundtrip(sock, b"a") == b"a"
    proxy.close()
    with sock, pytest.raises(ConnectionError):
        sock.sendall(b"b")
        if not sock.recv(10):
            raise ConnectionResetError
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    assert not any(t.is_alive() for t in [proxy._thread])
