"""Serving an aiohttp low-level handler on a TCP address or a Unix socket."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from ...util.config import split_host_port

log = logging.getLogger(__name__)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


async def serve(handler: Handler, bind: str, name: str) -> web.BaseRunner:
    server = web.Server(handler, access_log=None, handler_cancellation=True)
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
