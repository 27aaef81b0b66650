"""Multipart uploads: the upload is an Uploading version of the object (uuid = upload id)
plus a multipart_upload entry listing parts; each part is its own version with blocks.
Complete gathers the chosen parts' blocks into the upload's version, renumbered 1..N."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

from aiohttp import web

from ...model.s3.block_ref_table import BlockRef
from ...model.s3.mpu_table import MpuPart, MultipartUpload
from ...model.s3.object_table import (
    ABORTED,
    COMPLETE,
    FIRST_BLOCK,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from ...model.s3.version_table import Version, VersionBlock
from ...util.clock import SYSTEM_CLOCK, next_timestamp, now_msec
from ...util.ids import gen_uuid
from ..common import errors
from ..common.signature import checksum as ck
from ..common.wire import parse_part_number, parse_uint
from . import encryption, xml
from .context import ReqCtx
from .copy_object import resolve_copy_source
from .get import stream_blocks
from .meta import headers_to_store
from .names import check_object_key
from .put import (
    Reader,
    Written,
    checksum_algo_for,
    new_checksummer,
    verify_body_checksums,
    write_blocks,
)

XML = "application/xml"
MIN_PART_SIZE = 5 * 1024 * 1024


def _upload_id(ctx: ReqCtx) -> bytes:
    raw = ctx.query.get("uploadId", "")
    try:
        uid = bytes.fromhex(raw)
    except ValueError:
        uid = b""
    if len(uid) != 32:
        raise errors.NoSuchUpload()
    return uid


async def _load(ctx: ReqCtx) -> tuple[MultipartUpload, Object, ObjectVersion]:
    uid = _upload_id(ctx)
    mpu = await ctx.garage.mpu_table.get(uid)
    obj = await ctx.garage.object_table.get(ctx.bucket_id, ctx.key.encode())
    v = next((v for v in obj.versions if v.uuid == uid), None) if obj else None
    if mpu is None or mpu.deleted or obj is None or v is None or v.state != UPLOADING \
            or mpu.bucket_id != ctx.bucket_id or mpu.key != ctx.key:
        raise errors.NoSuchUpload()
    return mpu, obj, v


async def handle_create(ctx: ReqCtx) -> web.Response:
    g = ctx.garage
    check_object_key(ctx.key)
    stored = headers_to_store(ctx.headers, list(ctx.headers.items()))
    sse = encryption.for_write(ctx.headers)
    if sse is not None:  # each part is encrypted with the key given again on UploadPart
        stored.append(sse.stored_header())
    algo = ck.requested_algorithm({k.lower(): v for k, v in ctx.headers.items()})
    existing = await g.object_table.get(ctx.bucket_id, ctx.key.encode())
    ts = next_timestamp(SYSTEM_CLOCK, existing.newest_timestamp() if existing else None)
    uid = gen_uuid()
    v = ObjectVersion(uid, ts, UPLOADING, multipart=True, upload_headers=stored,
                      upload_checksum_algo=algo)
    await g.mpu_table.insert(MultipartUpload(uid, ctx.bucket_id, ctx.key, ts))
    await g.version_table.insert(Version(uid, backlink=("mpu", uid)))
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [v]))
    headers = {"x-amz-checksum-algorithm": algo.upper()} if algo else {}
    headers.update(encryption.response_headers(sse))
    return web.Response(body=xml.initiate_multipart_xml(ctx.bucket_name or "", ctx.key,
                                                        uid.hex()),
                        content_type=XML, headers=headers)


def _part_number(ctx: ReqCtx) -> int:
    return parse_part_number(ctx.query.get("partNumber"))


async def _store_part(ctx: ReqCtx, read: Reader, algo: str | None
                      ) -> tuple[MultipartUpload, int, bytes, int, int, ck.Checksums,
                                 encryption.Sealed | None]:
    """Store a part's blocks under a new part version; -> (mpu, number, version, ts, size,
    checksums, SSE-C encryption). The part only counts once _finish_part records its ETag."""
    g = ctx.garage
    pn = _part_number(ctx)
    mpu, _, upload = await _load(ctx)
    sse = encryption.for_part(ctx.headers, upload.upload_headers)
    first = await read(g.config.block_size)
    if not first:
        raise errors.InvalidRequest("empty part body")
    part_version = gen_uuid()
    ts = now_msec()
    await g.mpu_table.insert(MultipartUpload(mpu.upload_id, mpu.bucket_id, mpu.key,
                                             mpu.timestamp,
                                             parts={(pn, ts): MpuPart(part_version)}))
    await g.version_table.insert(Version(part_version, backlink=("mpu", mpu.upload_id)))
    summer = new_checksummer(ctx, algo)
    size, _ = await write_blocks(g, part_version, pn, read, summer, first,
                                 pack=sse.pack if sse is not None else None)
    return mpu, pn, part_version, ts, size, summer.result(), sse


async def _finish_part(ctx: ReqCtx, mpu: MultipartUpload, pn: int, pv: bytes, ts: int,
                       size: int, etag: str, checksum: str | None) -> None:
    await ctx.garage.mpu_table.insert(MultipartUpload(
        mpu.upload_id, mpu.bucket_id, mpu.key, mpu.timestamp,
        parts={(pn, ts): MpuPart(pv, etag, size, checksum)}))


async def handle_upload_part(ctx: ReqCtx, read: Reader,
                             trailers: Callable[[], dict[str, str]]) -> web.Response:
    algo, declared = checksum_algo_for(ctx)
    mpu, pn, pv, ts, size, sums, sse = await _store_part(ctx, read, algo)
    checksum = verify_body_checksums(ctx, Written(size, sums, None, None), trailers(),
                                     declared)
    assert sums.md5 is not None
    etag = encryption.etag(sse, sums.md5)
    await _finish_part(ctx, mpu, pn, pv, ts, size, etag, checksum[1] if checksum else None)
    headers = {"ETag": f'"{etag}"', **encryption.response_headers(sse)}
    if checksum:
        headers[f"x-amz-checksum-{checksum[0]}"] = checksum[1]
    return web.Response(headers=headers)


async def handle_upload_part_copy(ctx: ReqCtx) -> web.Response:
    g = ctx.garage
    _, _, src = await resolve_copy_source(ctx)
    assert src.meta is not None
    src_sse = encryption.for_read(ctx.headers, src, copy_source=True)
    size = src.meta.size
    rng_hdr = ctx.headers.get("x-amz-copy-source-range")
    start, end = 0, size
    if rng_hdr is not None:
        # Exactly bytes=first-last inside the source: no suffix, open or clamped ranges.
        m = re.fullmatch(r"bytes=([0-9]{1,19})-([0-9]{1,19})", rng_hdr.strip())
        if m is None or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) >= size:
            raise errors.InvalidArgument(
                f"Range specified is not valid for source object of size: {size}")
        start, end = int(m.group(1)), int(m.group(2)) + 1
    if src.inline is not None:
        data = src.inline[start:end]

        async def chunks():  # type: ignore[no-untyped-def]
            yield data
        source = chunks()
    else:
        source = stream_blocks(g, src, start, end,
                               decrypt=src_sse.decrypt if src_sse is not None else None)
    buf = bytearray()
    it = source.__aiter__()
    done = False

    async def read(n: int) -> bytes:
        nonlocal done
        while len(buf) < n and not done:
            try:
                buf.extend(await it.__anext__())
            except StopAsyncIteration:
                done = True
        out = bytes(buf[:n])
        del buf[:n]
        return out

    mpu, pn, pv, ts, _size, sums, sse = await _store_part(ctx, read, None)
    assert sums.md5 is not None
    etag = encryption.etag(sse, sums.md5)
    await _finish_part(ctx, mpu, pn, pv, ts, end - start, etag, None)
    return web.Response(body=xml.copy_part_xml(etag, ts), content_type=XML,
                        headers=encryption.response_headers(sse))


async def handle_complete(ctx: ReqCtx, body: bytes) -> web.Response:
    g = ctx.garage
    requested = xml.parse_complete_multipart(body)
    if not requested:
        raise errors.MalformedXML("the part list is empty")
    mpu, obj, v = await _load(ctx)
    numbers = [n for n, _, _ in requested]
    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        raise errors.InvalidPartOrder()
    have = mpu.latest_parts()
    chosen: list[MpuPart] = []
    for i, (n, etag, sums) in enumerate(requested):
        entry = have.get(n)
        if entry is None or entry[1].etag != etag.strip('"'):
            raise errors.InvalidPart(f"part {n} was not uploaded or its ETag does not match")
        part = entry[1]
        if i < len(requested) - 1 and (part.size or 0) < MIN_PART_SIZE:
            raise errors.EntityTooSmall(f"part {n} is smaller than 5 MiB and is not the last")
        algo = v.upload_checksum_algo
        if algo and algo in sums and part.checksum and sums[algo] != part.checksum:
            raise errors.InvalidPart(f"part {n}: checksum does not match")
        chosen.append(part)
    # Gather blocks, renumbering the parts 1..N.
    blocks: dict[tuple[int, int], VersionBlock] = {}
    for new_n, part in enumerate(chosen, start=1):
        pv = await g.version_table.get(part.version)
        if pv is None or pv.deleted:
            raise errors.InvalidPart("part data missing")
        for (_, off), b in pv.blocks.items():
            blocks[(new_n, off)] = b
    await g.block_ref_table.insert_many(BlockRef(b.hash, mpu.upload_id)
                                        for b in blocks.values())
    await g.version_table.insert(Version(mpu.upload_id, blocks=blocks,
                                         backlink=("object", ctx.bucket_id, ctx.key)))
    md5s = b"".join(bytes.fromhex(p.etag or "") for p in chosen)
    etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(chosen)}"
    checksum = _composite_checksum(v.upload_checksum_algo, chosen)
    size = sum(p.size or 0 for p in chosen)
    first = blocks[min(blocks)].hash
    done = ObjectVersion(v.uuid, v.timestamp, COMPLETE, multipart=True, kind=FIRST_BLOCK,
                         meta=ObjectMeta(size, etag, v.upload_headers, checksum, len(chosen),
                                         [p.checksum or "" for p in chosen] if checksum
                                         else None),
                         first_block=first)
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [done]))
    await g.mpu_table.insert(MultipartUpload(mpu.upload_id, mpu.bucket_id, mpu.key,
                                             mpu.timestamp, deleted=True))
    location = f"/{ctx.bucket_name}/{ctx.key}"
    return web.Response(body=xml.complete_multipart_xml(location, ctx.bucket_name or "",
                                                        ctx.key, etag, checksum),
                        content_type=XML, headers={"x-amz-version-id": v.uuid.hex()})


def _composite_checksum(algo: str | None, parts: list[MpuPart]) -> tuple[str, str] | None:
    """S3's COMPOSITE checksum: checksum of the concatenated part checksums, '-N'."""
    if not algo or not parts or any(p.checksum is None for p in parts):
        return None
    raw = b"".join(base64.b64decode(p.checksum or "") for p in parts)
    summer = ck.Checksummer([algo], md5=False)
    summer.update(raw)
    return algo, f"{summer.result().extra[algo]}-{len(parts)}"


async def handle_abort(ctx: ReqCtx) -> web.Response:
    _, _, v = await _load(ctx)
    aborted = ObjectVersion(v.uuid, v.timestamp, ABORTED, multipart=True)
    await ctx.garage.object_table.insert(Object(ctx.bucket_id, ctx.key, [aborted]))
    return web.Response(status=204)


async def handle_list_parts(ctx: ReqCtx) -> web.Response:
    mpu, _, v = await _load(ctx)
    q = ctx.query
    max_parts = min(parse_uint(q.get("max-parts", "1000"), "max-parts"), 1000)
    marker = parse_uint(q.get("part-number-marker", "0"), "part-number-marker")
    parts = sorted((n, t, p) for n, (t, p) in mpu.latest_parts().items() if n > marker)
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    infos = [xml.PartInfo(n, p.etag or "", p.size or 0, t,
                          (v.upload_checksum_algo, p.checksum)
                          if v.upload_checksum_algo and p.checksum else None)
             for n, t, p in parts]
    body = xml.list_parts_xml(ctx.bucket_name or "", ctx.key, mpu.upload_id.hex(), infos,
                              part_number_marker=marker or None,
                              next_marker=parts[-1][0] if truncated and parts else None,
                              max_parts=max_parts, truncated=truncated,
                              owner_id=ctx.api_key.key_id,
                              checksum_algorithm=v.upload_checksum_algo)
    return web.Response(body=body, content_type=XML)
