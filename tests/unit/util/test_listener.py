"""util/listener.py on both event loops: connections are served, a failed accept() is logged
once per interval without a traceback and accepting resumes, close() stops listening."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from pygarage.util import listener as listener_mod
from pygarage.util.listener import Listener

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def run_on(name: str, main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[name]) as r:
        r.run(main)


class Echo(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:  # uvloop's is no asyncio.Transport
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


async def roundtrip(port: int, payload: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(payload)
    out = await asyncio.wait_for(r.readexactly(len(payload)), 5)
    w.close()
    return out


@pytest.mark.parametrize("loop", LOOPS)
def test_serves_connections_then_stops_listening(loop: str) -> None:
    async def main() -> None:
        lst = Listener(Echo, "test")
        await lst.start_tcp("127.0.0.1", 0)
        port = lst.port
        assert await asyncio.gather(*(roundtrip(port, b"hi %d" % i) for i in range(20))) \
            == [b"HI %d" % i for i in range(20)]
        await lst.close()
        with pytest.raises(OSError):
            await roundtrip(port, b"x")

    run_on(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
def test_unix_socket(loop: str, tmp_path: Any) -> None:
    async def main() -> None:
        path = str(tmp_path / "s.sock")
        lst = Listener(Echo, "test")
        lst.start_unix(path)
        r, w = await asyncio.open_unix_connection(path)
        w.write(b"abc")
        assert await asyncio.wait_for(r.readexactly(3), 5) == b"ABC"
        w.close()
        await lst.close()

    run_on(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
def test_accept_failures_logged_once_per_interval_and_accepting_resumes(
        loop: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """accept() fails (EMFILE) 2,000 times in a row, as when out of descriptors: one log line,
    no traceback, the listener still serves afterwards. The failures are injected in the loop's
    sock_accept: the real exhaustion is tests/integration/test_hardening_front.py's."""
    monkeypatch.setattr(listener_mod, "ACCEPT_RETRY_S", 0.0)
    monkeypatch.setattr(listener_mod, "_failures", listener_mod.ThrottledLog(
        "socket.accept() failed, out of system resources"))

    async def main() -> None:
        ev = asyncio.get_running_loop()
        real = ev.sock_accept
        left = [2000]

        async def failing(sock: socket.socket) -> tuple[socket.socket, Any]:
            if left[0]:
                left[0] -= 1
                await asyncio.sleep(0)
                raise OSError(errno.EMFILE, "Too many open files")
            return await real(sock)

        monkeypatch.setattr(ev, "sock_accept", failing, raising=False)
        lst = Listener(Echo, "test")
        await lst.start_tcp("127.0.0.1", 0)
        assert await roundtrip(lst.port, b"after") == b"AFTER"
        assert left[0] == 0
        await lst.close()

    with caplog.at_level(logging.INFO):
        run_on(loop, main())
    lines = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(lines) == 1 and "EMFILE" in lines[0].getMessage(), \
        [r.getMessage() for r in lines]
    assert lines[0].exc_info is None


def _ipv6_dual_stack() -> bool:
    try:
        with open("/proc/sys/net/ipv6/bindv6only") as f:
            if f.read().strip() != "0":
                return False
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_dual_stack(), reason="no IPv6, or IPv6 sockets are v6-only")
@pytest.mark.parametrize("loop", LOOPS)
def test_ipv6_wildcard_also_takes_ipv4_clients(loop: str) -> None:
    """"[::]:3900", Garage's documented bind, serves IPv4 clients as well, as Garage does."""
    async def main() -> None:
        lst = Listener(Echo, "test")
        await lst.start_tcp("::", 0)
        assert await roundtrip(lst.port, b"v4") == b"V4"
        r, w = await asyncio.open_connection("::1", lst.port)
        w.write(b"v6")
        assert await asyncio.wait_for(r.readexactly(2), 5) == b"V6"
        w.close()
        await lst.close()

    run_on(loop, main())
