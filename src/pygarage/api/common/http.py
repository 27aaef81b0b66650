"""Serving an aiohttp low-level handler on a TCP address or a Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ...util.config import split_host_port
from ...util.logsafe import logsafe
from .connections import ConnectionGuard, GuardedServer, quiet_accept_errors

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
    quiet_accept_errors(asyncio.get_running_loop())
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
    site: web.BaseSite
    if bind.startswith("/"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(bind)
        site = web.UnixSite(runner, bind)
    else:
        host, port = split_host_port(bind)
        site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    log.info("%s listening on %s", name, bind)
    return runner


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
