"""Serving an aiohttp low-level handler on a TCP address or a Unix socket."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ...util.config import split_host_port
from ...util.listener import Listener, unlink_stale
from ...util.logsafe import logsafe
from .connections import ConnectionGuard, GuardedServer

log = logging.getLogger(__name__)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class _ClientGarbageFilter(logging.Filter):
    """aiohttp logs unparsable requests (a client's fault, answered 400) at ERROR with a
    traceback; keep one INFO line instead, so a traceback in the log always means a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            detail = logsafe(" ".join(str(exc).split()), 200)
            record.msg, record.args = f"{logsafe(record.getMessage())}: {detail}", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_aiohttp_server_log = logging.getLogger("aiohttp.server")
if not any(isinstance(f, _ClientGarbageFilter) for f in _aiohttp_server_log.filters):
    _aiohttp_server_log.addFilter(_ClientGarbageFilter())


# aiohttp's default of 128 header lines refuses requests AWS accepts: 2 KB of user metadata
# may be a few hundred x-amz-meta-* headers (AWS bounds the whole header section to 8 KB).
# Each line stays bounded (8190 bytes, aiohttp's default), so a request's header section is
# at most 512 x 8 KiB = 4 MiB; beyond, aiohttp answers 400.
MAX_HEADERS = 512
MAX_HEADER_LINE = 8190


async def serve(handler: Handler, bind: str, name: str,
                guard: ConnectionGuard) -> web.BaseRunner:
    """guard: the connection cap and header deadline, shared by the listeners."""
    # Request bodies are data: a `Content-Encoding: gzip` object must be stored as sent,
    # never decompressed by the HTTP layer.
    # read_bufsize: with aiohttp's 64 KiB default, a streamed body pauses and resumes the
    # socket every 128 KiB; 1 MiB (one block) keeps large PUTs flowing.
    server = GuardedServer(handler, guard, access_log=None, handler_cancellation=True,
                           auto_decompress=False, read_bufsize=1 << 20,
                           max_headers=MAX_HEADERS, max_field_size=MAX_HEADER_LINE,
                           max_line_size=MAX_HEADER_LINE)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    await _ListenerSite(runner, bind, name).start()
    log.info("%s listening on %s", name, bind)
    return runner


class _ListenerSite(web.BaseSite):
    """An aiohttp site accepting through util/listener.py (never stops listening, on any
    event loop), on a TCP address or a Unix socket path."""

    def __init__(self, runner: web.BaseRunner, bind: str, name: str):
        super().__init__(runner)
        self._bind = bind
        self._listener: Listener | None = None
        self._label = name

    @property
    def name(self) -> str:
        return self._bind

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        listener = Listener(server, self._label)
        if self._bind.startswith("/"):
            unlink_stale(self._bind)
            listener.start_unix(self._bind)
        else:
            host, port = split_host_port(self._bind)
            await listener.start_tcp(host, port)
        self._listener = listener

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await super().stop()


def cut_connection(request: web.BaseRequest, error: BaseException, prefix: str = "") -> None:
    """After part of a response went out, an error cannot be answered: a second response
    would land inside the first one's body. Abort the connection instead (the client sees a
    short body, never a complete-looking one) and say so in one log line."""
    log.log(logging.INFO if isinstance(error, ConnectionError) else logging.WARNING,
            "%s%s %s: connection cut after %d bytes of response: %s", prefix,
            logsafe(request.method), logsafe(request.path), request.writer.output_size,
            logsafe(error))
    if request.transport is not None:
        request.transport.abort()
    request.protocol.force_close()
