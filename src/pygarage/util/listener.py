"""Listening sockets whose accept loop is ours, the same on any event loop.

Not loop.create_server: on a failed accept() (out of file descriptors, of buffers...)
asyncio logs a traceback per attempt, thousands a second under a flood, and uvloop (libuv)
closes the listening socket for good on an error it cannot absorb, so the node would stop
serving until restarted. Here such failures are counted in one log line per interval and
accepting resumes after a pause (asyncio's own remedy): the node never stops listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable

from .throttled_log import ThrottledLog

log = logging.getLogger(__name__)

# What asyncio waits after such a failure before accepting again: descriptors or memory
# may have been freed meanwhile; meanwhile new connections wait in the backlog.
ACCEPT_RETRY_S = 1.0
BACKLOG = 128
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# The client gave up before it was accepted: nothing to do.
_CLIENT_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


# One for all listeners (S3, admin, RPC...): one line per interval in all.
_failures = ThrottledLog("socket.accept() failed, out of system resources: connections are "
                         "not being accepted meanwhile")


class Listener:
    """Accepts connections on one or more bound sockets, each handed to a new protocol."""

    def __init__(self, factory: ProtocolFactory, name: str):
        self.factory = factory
        self.name = name
        self.sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start_tcp(self, host: str | None, port: int) -> None:
        """Bind every address `host` resolves to (all interfaces when None or empty)."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        unique = list(dict.fromkeys((family, kind, proto, addr)
                                    for family, kind, proto, _, addr in infos))
        both = len({family for family, *_ in unique}) > 1
        try:
            for family, kind, proto, addr in unique:
                sock = socket.socket(family, kind, proto)
                self.sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and both:
                    # Each family its own socket, so that both can bind the port. Otherwise
                    # the system's default, as Garage: "[::]:3900" also takes IPv4 clients
                    # on Linux (asyncio's create_server would make it IPv6 only).
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
        except BaseException:
            self._close_sockets()
            raise
        self._listen()

    def start_unix(self, path: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sockets.append(sock)
        try:
            sock.bind(path)
        except BaseException:
            self._close_sockets()
            raise
        self._listen()

    @property
    def port(self) -> int:
        port: int = self.sockets[0].getsockname()[1]
        return port

    def _listen(self) -> None:
        for sock in self.sockets:
            sock.listen(BACKLOG)
            sock.setblocking(False)
            self._tasks.append(asyncio.ensure_future(self._accept_loop(sock)))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                if e.errno in _CLIENT_ERRNOS:
                    continue
                if e.errno in _RESOURCE_ERRNOS:
                    _failures.hit(errno.errorcode.get(e.errno or 0, "?"))
                else:
                    log.warning("%s: accept() failed: %s", self.name, e)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            await self._connect(loop, conn)

    async def _connect(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        try:
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                # Small requests and answers must not wait for Nagle (asyncio does this too).
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.connect_accepted_socket(self.factory, conn)
        except OSError:
            conn.close()  # the client has already left
        except asyncio.CancelledError:
            conn.close()  # closing the listener
            raise
        except Exception:
            conn.close()
            log.exception("%s: cannot set up an accepted connection", self.name)


def unlink_stale(path: str) -> None:
    """A Unix socket path left by an earlier run (binding would fail)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
