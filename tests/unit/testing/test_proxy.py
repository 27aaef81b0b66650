"""The fault proxy with plain sockets and an echo server: bytes in order under jitter, delay
accuracy, delay not throttling bandwidth, bandwidth cap, reset and black-hole cuts and
healing, clients from unknown IPs untouched, and no task or socket left behind."""

from __future__ import annotations

import os
import random
import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from pygarage.testing.proxy import BLACKHOLE, ProxyThread

A_IP, B_IP = "127.0.0.21", "127.0.0.22"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    srv = _Server(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[0], srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[tuple[ProxyThread, tuple[str, int]]]:
    p = ProxyThread(seed=1)
    p.add_node("a", A_IP, echo)
    addr_b = p.add_node("b", B_IP, echo)
    yield p, addr_b
    p.close()


def _dial(addr: tuple[str, int], src: str = A_IP, timeout: float = 5.0) -> socket.socket:
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(addr)
    return s


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(65536, n - len(buf)))
        if not chunk:
            raise ConnectionError("closed early")
        buf += chunk
    return bytes(buf)


def _roundtrip(s: socket.socket, msg: bytes = b"ping") -> float:
    t0 = time.monotonic()
    s.sendall(msg)
    assert _recv_exact(s, len(msg)) == msg
    return time.monotonic() - t0


def _transfer(s: socket.socket, data: bytes) -> bytes:
    """Send all of `data` (in random-size writes) while reading the echo back."""
    got = bytearray()

    def reader() -> None:
        got.extend(_recv_exact(s, len(data)))

    t = threading.Thread(target=reader)
    t.start()
    rng, i = random.Random(2), 0
    while i < len(data):
        n = rng.randint(1, 200_000)
        s.sendall(data[i:i + n])
        i += n
    t.join(60)
    return bytes(got)


def _timed_echo(addr: tuple[str, int], data: bytes) -> float:
    """Seconds to send `data` through the proxy on a new connection and read it back."""
    with _dial(addr) as s:
        t0 = time.monotonic()
        assert _transfer(s, data) == data
        return time.monotonic() - t0


def test_bytes_arrive_in_order_under_heavy_jitter(proxy: tuple[ProxyThread, tuple[str, int]]
                                                  ) -> None:
    p, addr = proxy
    p.set_delay(["a"], ["b"], 0.02, 0.015)  # jitter close to the mean: reordering would show
    data = random.Random(3).randbytes(4_000_000)
    with _dial(addr) as s:
        assert _transfer(s, data) == data


def test_delay_accuracy_both_directions(proxy: tuple[ProxyThread, tuple[str, int]]) -> None:
    p, addr = proxy
    with _dial(addr) as s:
        base = [_roundtrip(s) for _ in range(5)]
        assert max(base) < 0.02
        p.set_delay(["a"], ["b"], 0.05, 0.01)  # one way 50 +- 10 ms: RTT 100 +- 20 ms
        rtts = [_roundtrip(s) for _ in range(20)]
    print(f"RTT through a 50+-10 ms per direction delay: median "
          f"{statistics.median(rtts) * 1000:.1f} ms, min {min(rtts) * 1000:.1f}, "
          f"max {max(rtts) * 1000:.1f}")
    assert min(rtts) >= 0.079
    assert max(rtts) <= 0.135
    assert 0.088 <= statistics.median(rtts) <= 0.115
    assert statistics.pstdev(rtts) > 0.003  # the jitter is there


def test_delay_adds_latency_not_a_bandwidth_cap(
        proxy: tuple[ProxyThread, tuple[str, int]]) -> None:
    p, addr = proxy
    p.set_delay(["a"], ["b"], 0.05)
    data = os.urandom(20_000_000)
    took = _timed_echo(addr, data)
    # Sleeping 50 ms per 64 KiB read would take 15 s; a pipeline takes about a RTT more.
    print(f"20 MB echoed through a 50 ms delay in {took:.2f} s")
    assert took < 5


def test_bandwidth_cap(proxy: tuple[ProxyThread, tuple[str, int]]) -> None:
    p, addr = proxy
    p.set_bandwidth(["a"], ["b"], 1_000_000)
    data = os.urandom(600_000)
    took = _timed_echo(addr, data)
    assert 0.5 <= took < 3, took
    p.set_bandwidth(["a"], ["b"], None)
    assert _timed_echo(addr, data) < 0.5


def test_reset_cut_drops_and_refuses_then_heals(
        proxy: tuple[ProxyThread, tuple[str, int]]) -> None:
    p, addr = proxy
    s = _dial(addr)
    other = _dial(addr, src="127.0.0.1")  # not a node: never cut
    _roundtrip(s)
    assert p.connections("a", "b") == 1
    p.cut(["a"], ["b"])
    with pytest.raises(OSError):  # reset at once, not a timeout
        s.sendall(b"x")
        if not s.recv(1):
            raise ConnectionResetError("closed")
    s.close()
    assert p.connections("a", "b") == 0
    # The TCP connect succeeds, then it is reset before any byte; the reset can arrive
    # before connect() returns (it then fails with ECONNRESET itself).
    t0 = time.monotonic()
    with pytest.raises(OSError):
        new = _dial(addr)
        try:
            new.sendall(b"x")
            if not new.recv(1):
                raise ConnectionResetError("closed")
        finally:
            new.close()
    assert time.monotonic() - t0 < 1
    _roundtrip(other)
    p.heal()
    with _dial(addr) as s2:
        _roundtrip(s2)
    other.close()


def test_blackhole_freezes_then_heal_delivers(
        proxy: tuple[ProxyThread, tuple[str, int]]) -> None:
    p, addr = proxy
    s = _dial(addr)
    _roundtrip(s)
    p.cut(["b"], ["a"], mode=BLACKHOLE)
    s.settimeout(0.5)
    s.sendall(b"held")
    with pytest.raises(TimeoutError):
        s.recv(10)
    new = _dial(addr)  # accepted, then silence
    new.settimeout(0.5)
    new.sendall(b"new")
    with pytest.raises(TimeoutError):
        new.recv(10)
    p.heal(["a"], ["b"])
    s.settimeout(5)
    new.settimeout(5)
    assert _recv_exact(s, 4) == b"held"
    assert _recv_exact(new, 3) == b"new"
    s.close()
    new.close()


def test_no_task_or_socket_left(echo: tuple[str, int]) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    p = ProxyThread()
    p.add_node("a", A_IP, echo)
    addr = p.add_node("b", B_IP, echo)
    p.set_delay(["a"], ["b"], 0.01)
    socks = [_dial(addr) for _ in range(20)]
    for s in socks:
        _roundtrip(s)
    p.cut(["a"], ["b"], mode=BLACKHOLE)
    held = _dial(addr)
    for s in socks[:10]:
        s.close()  # a clean close on the client side
    p.heal()
    p.cut(["a"], ["b"])  # the other 10 are reset by the proxy
    for s in socks[10:]:
        s.close()
    held.close()
    p.heal()
    deadline = time.monotonic() + 5
    while (p.connections() or p.tasks()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.connections() == 0 and p.tasks() == 0
    p.close()
    time.sleep(0.2)  # the echo server's handler threads see their connections end
    assert len(os.listdir("/proc/self/fd")) <= fds
    assert threading.active_count() <= threads
