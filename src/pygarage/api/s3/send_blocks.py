"""The body of a whole, unencrypted, multi-block GET, sent by the kernel where it can.

Each local plain block is hashed in a worker thread (get_block_for_send), then its open
file goes from the page cache to the socket with sendfile: no copy of the data through
Python. The next blocks are verified while one is being sent. Blocks that are compressed,
elsewhere, or whose transport cannot sendfile (e.g. TLS) are written as bytes, as by the
general path. A block that fails its check is never sent: before the headers it is a clean
error, after them the connection is cut (api_server), as in the general path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from asyncio import constants as asyncio_constants
from collections.abc import AsyncGenerator

from aiohttp import web

from ...block.block_file import BlockFile
from ...util import metrics
from ...util.errors import CorruptData
from ...util.offload import offload

Part = BlockFile | bytes


async def send_body(request: web.BaseRequest, status: int, headers: dict[str, str],
                    items: AsyncGenerator[tuple[Part, int, int], None]) -> web.StreamResponse:
    """The response, its body from `items` (get.block_items of get_block_for_send, with
    close_part to release what is never sent)."""
    async with contextlib.aclosing(items):
        # The first block before the headers: a missing or corrupt one is a clean error.
        nxt = await anext(items, None)
        resp = web.StreamResponse(status=status, headers=headers)
        try:
            await resp.prepare(request)
            while nxt is not None:
                part, nxt = _narrowed(*nxt), None
                await _send(request, resp, part)
                nxt = await anext(items, None)
        finally:
            if nxt is not None:
                close_part(nxt[0])
    await resp.write_eof()
    return resp


def close_part(item: Part) -> None:
    if isinstance(item, BlockFile):
        item.close()


def _narrowed(item: Part, skip: int, take: int) -> Part:
    if isinstance(item, BlockFile):
        item.narrow(skip, take)
        return item
    return item[skip:take] if (skip, take) != (0, len(item)) else item


async def _send(request: web.BaseRequest, resp: web.StreamResponse, part: Part) -> None:
    """Write one part of the body; a BlockFile is closed once sent."""
    if isinstance(part, BlockFile):
        try:
            if await _sendfile(request, part):
                return
            # No sendfile on this transport: the verified bytes, read from the same file.
            data = await offload(part.read)
        finally:
            part.close()
        await resp.write(data)
    else:
        await resp.write(part)


async def _sendfile(request: web.BaseRequest, f: BlockFile) -> bool:
    """Send the file's range on the request's connection with the kernel's sendfile;
    False where the transport cannot (TLS, another event loop): the range left (`f` is
    advanced past what was sent) must then be written another way."""
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("Connection lost")
    if _uvloop_socket(transport):
        return await _sendfile_polled(request, transport, f)
    try:
        if transport.get_write_buffer_size() == 0 and _plain_socket(transport):
            # The common case on a fast link: the socket takes the whole block at once.
            # One system call, none of loop.sendfile's set-up per block (reading paused,
            # futures, a wait for writability: as much CPU as the send itself).
            sock = transport.get_extra_info("socket")
            try:
                sent = os.sendfile(sock.fileno(), f.file.fileno(), f.offset, f.count)
            except (BlockingIOError, InterruptedError):
                sent = -1  # the socket is full: loop.sendfile waits for it below
            except ConnectionError:
                raise
            except OSError:
                sent = -1  # loop.sendfile decides (and falls back if it cannot either)
            if sent == 0:
                raise CorruptData(f"block file ended {f.count} bytes early")
            if sent > 0:
                _sent(request, f, sent)
                if f.count == 0:
                    return True
        # Waits for what is buffered on the transport (headers, previous bytes) first.
        sent = await asyncio.get_running_loop().sendfile(transport, f.file, f.offset,
                                                         f.count, fallback=False)
    except (NotImplementedError, RuntimeError):
        # asyncio raises these (SendfileNotAvailableError is a RuntimeError) only when it
        # has sent nothing: unsupported transport, or the first sendfile call refused.
        return False
    except ConnectionError:
        # The client went away. The transport did not see it (sendfile bypasses it):
        # close it, as a failed write through it would have, so the error is reported
        # as the client's (499), not ours.
        transport.abort()
        raise
    count = f.count
    _sent(request, f, sent)
    if sent != count:  # the file ended early: cut the response (never a short body)
        raise CorruptData(f"block file sent {sent} of {count} bytes")
    return True


async def _sendfile_polled(request: web.BaseRequest, transport: asyncio.Transport,
                           f: BlockFile) -> bool:
    """uvloop has no loop.sendfile: the kernel's sendfile on the transport's socket, waiting
    for room in it through a duplicate of its descriptor (uvloop refuses a watcher on the
    transport's own). False if the socket cannot sendfile at all (nothing sent)."""
    loop = asyncio.get_running_loop()
    fd = transport.get_extra_info("socket").fileno()
    dup: int | None = None
    any_sent = False
    try:
        while f.count:
            if transport.is_closing():
                raise ConnectionResetError("Connection lost")
            if transport.get_write_buffer_size():
                # Bytes written through the transport (the headers) go out first.
                dup = os.dup(fd) if dup is None else dup
                await _writable(loop, dup)
                await asyncio.sleep(0)  # the transport's own watcher writes them
                continue
            try:
                sent = os.sendfile(fd, f.file.fileno(), f.offset, f.count)
            except (BlockingIOError, InterruptedError):
                dup = os.dup(fd) if dup is None else dup
                await _writable(loop, dup)
                continue
            except ConnectionError:
                raise
            except OSError:
                if any_sent:
                    raise
                return False
            if sent == 0:
                raise CorruptData(f"block file ended {f.count} bytes early")
            any_sent = True
            _sent(request, f, sent)
    except ConnectionError:
        transport.abort()  # as in _sendfile: the client's error (499), not ours
        raise
    finally:
        if dup is not None:
            os.close(dup)
    return True


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


def _uvloop_socket(transport: asyncio.BaseTransport) -> bool:
    """A plain (not TLS) TCP or Unix socket transport of uvloop."""
    kind = type(transport)
    return kind.__module__ == "uvloop.loop" and kind.__name__ in ("TCPTransport",
                                                                   "UnixTransport")


def _plain_socket(transport: asyncio.BaseTransport) -> bool:
    """Is it the selector loop's plain socket transport, whose bytes go to the socket as
    they are? asyncio's own test before its native sendfile (a TLS transport's bytes must
    go through TLS)."""
    return _TRY_NATIVE is not None and \
        getattr(transport, "_sendfile_compatible", None) is _TRY_NATIVE


# Private to asyncio: if a later Python drops it, only the direct call is lost (None).
_TRY_NATIVE = getattr(getattr(asyncio_constants, "_SendfileMode", None), "TRY_NATIVE", None)


def _sent(request: web.BaseRequest, f: BlockFile, n: int) -> None:
    f.narrow(n, f.count)
    # For the request log and the "cut after N bytes" of a later error.
    request.writer.output_size += n  # type: ignore[attr-defined]
    metrics.block_bytes_sendfile.inc(n)
