"""`garage server`: build Garage, start workers and the RPC, S3 and admin listeners, and
shut down cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from .api.admin.api_server import AdminApiServer
from .api.admin.cluster import ensure_single_node_layout
from .api.admin.errors import AdminError
from .api.admin.router import admin_call
from .api.common.connections import ConnectionGuard
from .api.common.http import serve
from .api.s3.api_server import S3ApiServer
from .model.garage import Garage
from .model.helpers.bucket import BucketHelper
from .model.helpers.key import KeyHelper
from .net.server import RpcError, RpcServer
from .rpc.membership import Membership
from .util import access_log, event_loop
from .util.config import Config, load_config, split_host_port
from .util.errors import GarageError, StartupError
from .util.fdlimit import connection_cap, raise_nofile_limit
from .util.logsafe import SafeFormatter
from .web.web_server import WebServer

log = logging.getLogger("pygarage")

DEFAULT_KEY_NAME = "default-key"


def setup_logging(default: str = "info") -> None:
    """GARAGE_LOG or RUST_LOG (Garage's variable): 'debug', 'garage=debug', ..."""
    spec = os.environ.get("GARAGE_LOG") or os.environ.get("RUST_LOG") or default
    level = logging.INFO
    for word, lvl in (("trace", logging.DEBUG), ("debug", logging.DEBUG),
                      ("warn", logging.WARNING), ("error", logging.ERROR)):
        if word in spec.lower():
            level = lvl
            break
    fmt = access_log.FORMAT
    # Nothing of these is in the format: skip finding them for every record (one access
    # line per request). The logging module documents _srcfile = None for this.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(level=level, format=fmt)
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.setFormatter(SafeFormatter(fmt))
    if len(handlers) == 1 and isinstance(handlers[0], logging.StreamHandler):
        access_log.install(handlers[0])
    if level > logging.DEBUG:
        logging.getLogger("aiohttp").setLevel(logging.WARNING)


@contextlib.asynccontextmanager
async def _listening(name: str, bind: str) -> AsyncIterator[None]:
    try:
        yield
    except OSError as e:  # e.g. the port is taken: the operator's to fix, no traceback
        raise StartupError(f"cannot listen for the {name} on {bind}: "
                           f"{e.strerror or e}") from None


def run_server(config_path: str, *, single_node: bool = False,
               default_bucket: str | None = None) -> None:
    setup_logging()
    config = load_config(config_path)
    try:
        event_loop.run(_main(config, single_node, default_bucket))
    except KeyboardInterrupt:
        pass


async def _setup_default_bucket(g: Garage, name: str) -> dict[str, Any]:
    """An access key and a bucket ready to use, created once and reused on restarts."""
    kh, bh = KeyHelper(g), BucketHelper(g)
    keys = [k for k in await kh.list_all() if k.name[1] == DEFAULT_KEY_NAME]
    key = keys[0] if keys else await kh.create(DEFAULT_KEY_NAME, allow_create_bucket=True)
    bid = await bh.resolve_global(name)
    bucket = await bh.get_existing(bid) if bid else await bh.create(name)
    if bucket.permissions(key.key_id) != (True, True, True):
        await bh.set_permissions(bucket, await kh.get_existing(key.key_id), True, True, True)
    return {"key_id": key.key_id, "secret": key.secret, "bucket": name}


async def _main(config: Config, single_node: bool, default_bucket: str | None) -> None:
    fd_limit = raise_nofile_limit()
    g = Garage(config)
    log.info("node id %s, db engine %s, metadata in %s, data in %s", g.system.node_id[:16],
             g.db.engine, config.metadata_dir, config.data_dir)
    if single_node and ensure_single_node_layout(g):
        log.info("single-node mode: this node now has a role in layout version %d",
                 g.system.layout.current.version)
    stray = await asyncio.to_thread(g.block_manager.store.remove_stray_temp_files)
    if stray:
        log.info("removed %d temporary block file(s) left by an interrupted write", stray)
    g.spawn_workers()
    g.block_manager.start_write_helper()

    rpc = RpcServer(config.rpc_secret, g.system.node_key,
                    rpc_timeout_msec=config.rpc_timeout_msec,
                    rpc_ping_timeout_msec=config.rpc_ping_timeout_msec,
                    bind_outgoing=config.rpc_outgoing_ip)

    async def admin_rpc(body: Any) -> Any:
        endpoint = body.get("endpoint") if isinstance(body, dict) else None
        query = body.get("query") or {} if isinstance(body, dict) else None
        if not isinstance(endpoint, str) or not isinstance(query, dict) or \
                not all(isinstance(k, str) and isinstance(v, str) for k, v in query.items()):
            raise RpcError("admin RPC body must be {endpoint: str, query: {str: str}, body}")
        try:
            return await admin_call(g, endpoint, query, body.get("body"))
        except AdminError as e:
            raise RpcError(e.message) from None
        except GarageError as e:  # e.g. a quorum not reached: the CLI shows why
            raise RpcError(str(e)) from None

    rpc.register("admin", admin_rpc)
    g.rpc.attach(rpc)
    async with _listening("RPC", config.rpc_bind_addr):
        await rpc.start(*split_host_port(config.rpc_bind_addr))
    log.info("RPC listening on %s", config.rpc_bind_addr)
    membership = Membership(g.system, rpc, config)
    membership.start()

    cap = connection_cap(config.http_max_connections, fd_limit)
    if cap < config.http_max_connections:
        log.warning("http_max_connections lowered from %d to %d: the open-file limit is %d "
                    "(raise it, e.g. LimitNOFILE in the systemd unit)",
                    config.http_max_connections, cap, fd_limit)
    guard = ConnectionGuard(cap, config.http_header_timeout_msec / 1000)
    log.info("open-file limit %d; HTTP connections capped at %d, request headers due "
             "within %g s", fd_limit, cap, guard.header_timeout)
    runners: list[web.BaseRunner] = []
    listeners: list[tuple[str, str, Any]] = []
    if config.s3_api.api_bind_addr:
        listeners.append(("S3 API", config.s3_api.api_bind_addr, S3ApiServer(g).handle))
    if config.admin.api_bind_addr:
        listeners.append(("admin API", config.admin.api_bind_addr,
                          AdminApiServer(g).handle))
    if config.s3_web is not None:
        listeners.append(("web endpoint", config.s3_web.bind_addr, WebServer(g).handle))
    for name, bind, handle in listeners:
        async with _listening(name, bind):
            runners.append(await serve(handle, bind, name, guard))

    if default_bucket:
        if not g.system.layout_ready():
            log.error("--default-bucket needs an applied layout (use --single-node)")
        else:
            d = await _setup_default_bucket(g, default_bucket)
            host = config.s3_api.api_bind_addr or "?"
            host = host.replace("[::]", "127.0.0.1").replace("0.0.0.0", "127.0.0.1")
            print(f"\n==== pygarage is ready ====\n"
                  f"S3 endpoint:   http://{host}\n"
                  f"Region:        {config.s3_api.s3_region}\n"
                  f"Access key:    {d['key_id']}\n"
                  f"Secret key:    {d['secret']}\n"
                  f"Bucket:        {d['bucket']}\n"
                  f"Try: AWS_ACCESS_KEY_ID={d['key_id']} AWS_SECRET_ACCESS_KEY=... "
                  f"aws --endpoint-url http://{host} --region {config.s3_api.s3_region} "
                  f"s3 ls s3://{d['bucket']}\n", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("pygarage is up")
    await stop.wait()
    log.info("shutting down")
    for r in runners:
        await r.shutdown()
        await r.cleanup()
    await membership.stop()
    await rpc.close()
    await g.shutdown()
