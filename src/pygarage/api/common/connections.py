"""Connection-level protection of the HTTP listeners (S3 and admin API), so that nobody
without credentials can take the server's connections or file descriptors:

- a deadline for each request's headers, counted from the connection's start (or from the
  end of the previous response on a kept-alive connection) to the last header byte: total,
  not per byte, so a client trickling one byte every few seconds is closed all the same;
- a cap on concurrent connections: at the cap, a new connection evicts the connection that
  has waited longest for its request headers (an idle or trickling client), so a client
  that sends its request promptly is served during a flood; only when every connection is
  busy with a request is the new one refused;
- one log line per interval, with counts, for all of this (accept() failures: see
  util/listener.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ...util.throttled_log import ThrottledLog

log = logging.getLogger(__name__)


class ConnectionGuard:
    """Shared by the HTTP listeners: one cap for all their connections."""

    def __init__(self, max_connections: int, header_timeout: float):
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.count = 0
        # Connections waiting for a request's headers, the longest-waiting first (values
        # unused: an ordered set).
        self._waiting: OrderedDict[GuardedHandler, None] = OrderedDict()
        self._timeouts = ThrottledLog(
            f"closed connections that sent no complete request headers within "
            f"{header_timeout:g} s", logging.INFO)
        self._evicted = ThrottledLog(
            f"at the HTTP connection cap ({max_connections}): closed the connection "
            f"waiting longest for its request headers", logging.WARNING)
        self._refused = ThrottledLog(
            f"at the HTTP connection cap ({max_connections}) with every connection busy: "
            f"refused a new connection", logging.WARNING)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def opened(self, h: GuardedHandler) -> None:
        self.count += 1
        h.guard_counted = True
        if self.count > self.max_connections:
            if self._waiting:
                oldest, _ = self._waiting.popitem(last=False)
                oldest.force_close()
                self._evicted.hit()
            else:
                self._refused.hit()
                h.force_close()
                return
        self.idle(h)

    def closed(self, h: GuardedHandler) -> None:
        if h.guard_counted:
            h.guard_counted = False
            self.count -= 1
        self._waiting.pop(h, None)
        if h.guard_timer is not None:
            h.guard_timer.cancel()
            h.guard_timer = None

    def busy(self, h: GuardedHandler) -> None:
        """A request's headers are in: no deadline while it is handled."""
        self._waiting.pop(h, None)

    def idle(self, h: GuardedHandler) -> None:
        """The connection waits for a request's headers (its first, or the next one once
        a response is done): they are due within header_timeout."""
        if not h.guard_counted:
            return
        self._waiting.pop(h, None)
        self._waiting[h] = None
        loop = asyncio.get_running_loop()
        h.guard_deadline = loop.time() + self.header_timeout
        # One timer per connection, moved only when it fires (not on every request).
        if h.guard_timer is None:
            h.guard_timer = loop.call_at(h.guard_deadline, self._expire, h)

    def _expire(self, h: GuardedHandler) -> None:
        h.guard_timer = None
        if h not in self._waiting:
            return  # busy with a request: idle() arms the deadline again afterwards
        loop = asyncio.get_running_loop()
        if loop.time() < h.guard_deadline:  # it served requests since: not due yet
            h.guard_timer = loop.call_at(h.guard_deadline, self._expire, h)
            return
        del self._waiting[h]
        self._timeouts.hit()
        h.force_close()


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler, reporting to the guard when a connection opens,
    closes, completes a request's headers and finishes a response."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.guard_counted = False
        self.guard_deadline = 0.0
        self.guard_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.guard.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # aiohttp counts each request whose headers it has parsed (or failed to parse).
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self.guard.busy(self)

    async def _handle_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._handle_request(*args, **kwargs)
        finally:
            if not self._messages:  # no pipelined request already waiting
                self.guard.idle(self)


class GuardedServer(web.Server):
    """web.Server whose connections are GuardedHandlers."""

    def __init__(self, handler: Any, guard: ConnectionGuard, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, self.guard, loop=self._loop, **self._kwargs)
