"""GetObject and HeadObject: conditionals, Range and partNumber, response-* overrides,
checksums on request; block data streamed with a small read-ahead, never whole in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from aiohttp import web

from ...model.garage import Garage
from ...model.s3.object_table import Object, ObjectVersion
from ...model.s3.version_table import Version
from ..common import errors
from .conditions import check_conditions, content_range, http_date, parse_range
from .context import ReqCtx
from .meta import response_headers

READ_AHEAD = 2

_OVERRIDES = {"response-content-type": "Content-Type",
              "response-content-language": "Content-Language",
              "response-expires": "Expires", "response-cache-control": "Cache-Control",
              "response-content-disposition": "Content-Disposition",
              "response-content-encoding": "Content-Encoding"}


async def load_current(ctx: ReqCtx, key: str | None = None) -> tuple[Object, ObjectVersion]:
    key = ctx.key if key is None else key
    obj = await ctx.garage.object_table.get(ctx.bucket_id, key.encode())
    v = obj.current() if obj else None
    if obj is None or v is None:
        raise errors.NoSuchKey()
    vid = ctx.query.get("versionId")
    if vid is not None and vid not in ("null", v.uuid.hex()):
        raise errors.NoSuchVersion()
    return obj, v


def object_headers(ctx: ReqCtx, v: ObjectVersion) -> dict[str, str]:
    assert v.meta is not None
    h = {name.title() if not name.startswith("x-amz-") else name: val
         for name, val in response_headers(v.meta.headers)}
    h.update({"ETag": f'"{v.meta.etag}"', "Last-Modified": http_date(v.timestamp),
              "Accept-Ranges": "bytes", "x-amz-version-id": v.uuid.hex()})
    if v.meta.parts:
        h["x-amz-mp-parts-count"] = str(v.meta.parts)
    for q, name in _OVERRIDES.items():
        if q in ctx.query:
            h[name] = ctx.query[q]
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
    if not found:
        raise errors.InvalidPart(f"part {part_number} does not exist")
    end = start + sum(b.size for (p, _), b in ver.blocks.items() if p == part_number)
    return start, end


async def handle_get_object(ctx: ReqCtx, head: bool) -> web.StreamResponse:
    _, v = await load_current(ctx)
    assert v.meta is not None
    lower = {k.lower(): val for k, val in ctx.headers.items()}
    try:
        check_conditions(lower, v.meta.etag, v.timestamp)
    except errors.NotModified:
        return web.Response(status=304, headers={"ETag": f'"{v.meta.etag}"',
                                                  "Last-Modified": http_date(v.timestamp)})
    headers = object_headers(ctx, v)
    size = v.meta.size
    pn = ctx.query.get("partNumber")
    rng: tuple[int, int] | None
    if pn is not None:
        if "range" in lower:
            raise errors.InvalidRequest("cannot use both Range and partNumber")
        if not pn.isdigit() or int(pn) < 1:
            raise errors.InvalidArgument("partNumber must be a positive integer")
        rng = await part_range(ctx.garage, v, int(pn))
        headers["x-amz-mp-parts-count"] = str(v.meta.parts or 1)
    else:
        rng = parse_range(lower.get("range"), size)
    status = 200
    start, end = 0, size
    if rng is None and v.meta.checksum and \
            ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        # Only for the whole object: a part or range has a different checksum.
        algo, value = v.meta.checksum
        headers[f"x-amz-checksum-{algo}"] = value
        if value.rpartition("-")[2].isdigit() and "-" in value:
            headers["x-amz-checksum-type"] = "COMPOSITE"
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
    if v.first_block is not None and size <= ctx.garage.config.block_size:
        # Most likely a single block: read it without the version entry. A block that holds
        # the whole size proves there is no other (else: the general path below).
        data = await ctx.garage.block_manager.get_block(v.first_block)
        if len(data) == size:
            return web.Response(status=status, headers=headers, body=data[start:end])
    chunks = stream_blocks(ctx.garage, v, start, end)
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


async def stream_blocks(g: Garage, v: ObjectVersion, start: int, end: int
                        ) -> AsyncGenerator[bytes, None]:
    """Yield bytes [start, end) of a block-stored version, fetching a few blocks ahead.
    A failure mid-stream raises: the server then cuts the connection, so the client never
    mistakes a truncated body for a complete one."""
    ver: Version | None = await g.version_table.get(v.uuid)
    if ver is None or ver.deleted:
        raise errors.InternalError("object data is gone")
    wanted: list[tuple[bytes, int, int]] = []  # (hash, skip, take)
    pos = 0
    for _, b in ver.sorted_blocks():
        b_start, b_end = pos, pos + b.size
        pos = b_end
        if b_end <= start or b_start >= end:
            continue
        wanted.append((b.hash, max(0, start - b_start), min(b.size, end - b_start)))
    pending: list[asyncio.Task[bytes]] = []
    try:
        i = 0
        while i < len(wanted) or pending:
            while i < len(wanted) and len(pending) < READ_AHEAD:
                pending.append(asyncio.ensure_future(g.block_manager.get_block(wanted[i][0])))
                i += 1
            data = await pending.pop(0)
            _, skip, take = wanted[i - len(pending) - 1]
            yield data[skip:take] if (skip, take) != (0, len(data)) else data
    finally:
        for t in pending:
            t.cancel()
