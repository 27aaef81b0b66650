"""GetObject and HeadObject: conditionals, Range and partNumber, response-* overrides,
checksums on request; block data streamed with a small read-ahead, never whole in memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol, TypeVar

from aiohttp import web
from multidict import CIMultiDictProxy

from ...model.garage import Garage
from ...model.s3.object_table import Object, ObjectVersion
from ...model.s3.version_table import Version
from ..common import errors
from ..common.wire import check_header_value, parse_part_number
from . import encryption, send_blocks
from .conditions import check_conditions, content_range, http_date, parse_range
from .meta import response_headers
from .xml import checksum_type_of

T = TypeVar("T")

READ_AHEAD = 2
# Blocks on other nodes each cost a round trip: fetch more of them ahead.
READ_AHEAD_CLUSTER = 12


class ReadCtx(Protocol):
    """What a GET needs: the S3 API's ReqCtx, or the web endpoint's anonymous request."""

    garage: Garage
    request: web.BaseRequest
    query: dict[str, str]
    response_headers: dict[str, str]  # added to the answer (CORS)

    @property
    def headers(self) -> CIMultiDictProxy[str]: ...

    @property
    def bucket_id(self) -> bytes: ...

    @property
    def key(self) -> str: ...


_OVERRIDES = {"response-content-type": "Content-Type",
              "response-content-language": "Content-Language",
              "response-expires": "Expires", "response-cache-control": "Cache-Control",
              "response-content-disposition": "Content-Disposition",
              "response-content-encoding": "Content-Encoding"}


async def load_current(ctx: ReadCtx, key: str | None = None) -> tuple[Object, ObjectVersion]:
    key = ctx.key if key is None else key
    obj = await ctx.garage.object_table.get(ctx.bucket_id, key.encode())
    v = obj.current() if obj else None
    if obj is None or v is None:
        raise errors.NoSuchKey()
    vid = ctx.query.get("versionId")
    if vid is not None and vid not in ("null", v.uuid.hex()):
        raise errors.NoSuchVersion()
    return obj, v


def object_headers(ctx: ReadCtx, v: ObjectVersion) -> dict[str, str]:
    assert v.meta is not None
    h = {name.title() if not name.startswith("x-amz-") else name: val
         for name, val in response_headers(v.meta.headers)}
    h.update({"ETag": f'"{v.meta.etag}"', "Last-Modified": http_date(v.timestamp),
              "Accept-Ranges": "bytes", "x-amz-version-id": v.uuid.hex()})
    if v.meta.parts:
        h["x-amz-mp-parts-count"] = str(v.meta.parts)
    for q, name in _OVERRIDES.items():
        if q in ctx.query:
            # Echoed in a header: a CR/LF or other control character must be a 400, not a
            # response aiohttp refuses to send (the connection would just drop).
            h[name] = check_header_value(ctx.query[q], q)
    return h


async def part_range(g: Garage, v: ObjectVersion, part_number: int) -> tuple[int, int]:
    """Byte range of part N (1-based) of the object: parts were renumbered 1..N."""
    assert v.meta is not None
    if not v.meta.parts or v.inline is not None:
        if part_number != 1:
            raise errors.InvalidPart(f"part {part_number} does not exist")
        return 0, v.meta.size
    ver = await g.version_table.get(v.uuid)
    if ver is None:
        raise errors.InternalError("version data missing")
    start = end = 0
    found = False
    for (p, _off), b in ver.sorted_blocks():
        if p < part_number:
            start += b.size
        elif p == part_number:
            found = True
    found = found or part_number <= v.meta.parts  # an empty part has no blocks
    if not found:
        raise errors.InvalidPart(f"part {part_number} does not exist")
    end = start + sum(b.size for (p, _), b in ver.blocks.items() if p == part_number)
    return start, end


async def handle_get_object(ctx: ReadCtx, head: bool, *, status: int | None = None,
                            website: bool = False) -> web.StreamResponse:
    """status: replaces 200 (the web endpoint serves its error document with a 404).
    website: an object with x-amz-website-redirect-location answers 301 to it."""
    _, v = await load_current(ctx)
    assert v.meta is not None
    if website:
        location = dict(v.meta.headers).get("x-amz-website-redirect-location")
        if location is not None:
            return web.Response(status=301, headers={"Location": location})
    sse = encryption.for_read(ctx.headers, v)
    lower = {k.lower(): val for k, val in ctx.headers.items()}
    try:
        check_conditions(lower, v.meta.etag, v.timestamp)
    except errors.NotModified:
        return web.Response(status=304, headers={"ETag": f'"{v.meta.etag}"',
                                                  "Last-Modified": http_date(v.timestamp)})
    headers = object_headers(ctx, v)
    headers.update(encryption.response_headers(sse))
    headers.update(ctx.response_headers)
    size = v.meta.size
    pn = ctx.query.get("partNumber")
    rng: tuple[int, int] | None
    if pn is not None:
        if "range" in lower:
            raise errors.InvalidRequest("cannot use both Range and partNumber")
        rng = await part_range(ctx.garage, v, parse_part_number(pn))
        headers["x-amz-mp-parts-count"] = str(v.meta.parts or 1)
    else:
        rng = parse_range(lower.get("range"), size)
    status = status or 200
    start, end = 0, size
    if rng is None and v.meta.checksum and \
            ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        # Only for the whole object: a part or range has a different checksum.
        algo, value = v.meta.checksum
        headers[f"x-amz-checksum-{algo}"] = value
        headers["x-amz-checksum-type"] = checksum_type_of(value)
    if rng is not None:
        start, end = rng
        status = 206
        headers["Content-Range"] = content_range(start, end, size) if end > start \
            else f"bytes */{size}"
    headers["Content-Length"] = str(end - start)
    if head:
        return web.Response(status=status, headers=headers)
    if v.inline is not None:
        return web.Response(status=status, headers=headers, body=v.inline[start:end])
    if sse is None and v.first_block is not None and size <= ctx.garage.config.block_size:
        # Most likely a single block: read it without the version entry. A block that holds
        # the whole size proves there is no other (else: the general path below).
        data = await ctx.garage.block_manager.get_block(v.first_block)
        if len(data) == size:
            return web.Response(status=status, headers=headers, body=data[start:end])
    if sse is None and rng is None and size > ctx.garage.config.block_size and \
            not encryption.is_encrypted(v):
        # A whole large object: local plain blocks go out by sendfile once verified.
        bm = ctx.garage.block_manager
        return await send_blocks.send_body(
            ctx.request, status, headers,
            block_items(ctx.garage, v, 0, size, bm.get_block_for_send,
                        read_ahead(ctx.garage), send_blocks.close_part))
    chunks = stream_blocks(ctx.garage, v, start, end,
                           decrypt=sse.decrypt if sse is not None else None)
    # Fetch the first block before sending headers: if it is missing or corrupted, the
    # client gets a clean error instead of a cut stream.
    first = await anext(chunks, b"") if end > start else b""
    if len(first) == end - start:
        # All of it in one block (small objects): one response, one send with the headers.
        await chunks.aclose()
        return web.Response(status=status, headers=headers, body=first)
    resp = web.StreamResponse(status=status, headers=headers)
    await resp.prepare(ctx.request)
    try:
        if first:
            await resp.write(first)
        async for chunk in chunks:
            await resp.write(chunk)
    finally:
        await chunks.aclose()
    await resp.write_eof()
    return resp


async def stream_blocks(g: Garage, v: ObjectVersion, start: int, end: int,
                        decrypt: Callable[[bytes], bytes] | None = None
                        ) -> AsyncGenerator[bytes, None]:
    """Yield bytes [start, end) of a block-stored version, fetching a few blocks ahead.
    A failure mid-stream raises: the server then cuts the connection, so the client never
    mistakes a truncated body for a complete one. An SSE-C version needs `decrypt`
    (from encryption.for_read, which checked the key): its blocks are never served raw."""
    if decrypt is None and encryption.is_encrypted(v):
        raise errors.InvalidRequest("The object was stored using a form of Server Side "
                                    "Encryption. The correct parameters must be provided "
                                    "to retrieve the object.")
    async with contextlib.aclosing(block_items(g, v, start, end, g.block_manager.get_block,
                                               read_ahead(g))) as items:
        async for data, skip, take in items:
            if decrypt is not None:
                data = await asyncio.to_thread(decrypt, data)
            yield data[skip:take] if (skip, take) != (0, len(data)) else data


def read_ahead(g: Garage) -> int:
    return READ_AHEAD if len(g.system.layout.all_storage_nodes()) <= 1 else READ_AHEAD_CLUSTER


async def block_items(g: Garage, v: ObjectVersion, start: int, end: int,
                      get: Callable[[bytes], Awaitable[T]], ahead: int,
                      close: Callable[[T], None] = lambda _: None
                      ) -> AsyncGenerator[tuple[T, int, int], None]:
    """(item, skip, take) for each block overlapping bytes [start, end) of the version, in
    order: item = get(hash), fetched up to `ahead` blocks ahead; bytes [skip, take) of the
    block are wanted. `close` releases an item fetched but never yielded (the caller owns
    the items yielded)."""
    # The first block's hash is in the object entry: it is fetched while the version entry
    # (the list of all blocks) is read, a round trip saved when both are on other nodes.
    first: asyncio.Task[T] | None = None
    if v.first_block is not None and start < g.config.block_size and end > start:
        first = asyncio.ensure_future(get(v.first_block))
    try:
        ver: Version | None = await g.version_table.get(v.uuid)
    except BaseException:
        _discard(first, close)
        raise
    if ver is None or ver.deleted:
        _discard(first, close)
        raise errors.InternalError("object data is gone")
    wanted: list[tuple[bytes, int, int]] = []  # (hash, skip, take)
    pos = 0
    for _, b in ver.sorted_blocks():
        b_start, b_end = pos, pos + b.size
        pos = b_end
        if b_end <= start or b_start >= end:
            continue
        wanted.append((b.hash, max(0, start - b_start), min(b.size, end - b_start)))
    if first is not None and (not wanted or wanted[0][0] != v.first_block):
        _discard(first, close)  # the range starts past the first block
        first = None
    pending: list[asyncio.Task[T]] = []
    try:
        i = 0
        while i < len(wanted) or pending:
            while i < len(wanted) and len(pending) < ahead:
                if i == 0 and first is not None:
                    pending.append(first)
                else:
                    pending.append(asyncio.ensure_future(get(wanted[i][0])))
                i += 1
            item = await pending.pop(0)
            _, skip, take = wanted[i - len(pending) - 1]
            yield item, skip, take
    finally:
        for t in pending:
            _discard(t, close)


def _discard(t: asyncio.Task[T] | None, close: Callable[[T], None]) -> None:
    """Drop a prefetch that is not needed: cancelled, or its result released; its error (if
    any) not reported."""
    if t is None:
        return
    t.cancel()

    def done(t: asyncio.Task[T]) -> None:
        if not t.cancelled() and t.exception() is None:
            close(t.result())
    t.add_done_callback(done)
