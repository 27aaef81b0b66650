"""Multipart uploads: the upload is an Uploading version of the object (uuid = upload id)
plus a multipart_upload entry listing parts; each part is its own version with blocks.
Complete gathers the chosen parts' blocks into the upload's version, renumbered 1..N, with a
new timestamp (the last upload to complete wins; newer writes of the key never removed the
upload meanwhile), and keeps its answer in the upload's entry for a retried Complete.

Checksums: an upload created with x-amz-checksum-algorithm has a checksum type, COMPOSITE
(checksum of the parts' checksums, "-N") or FULL_OBJECT (CRC of the whole object, combined
from the parts' CRCs); every part gets that algorithm's checksum, verified when sent."""

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
    INLINE,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from ...model.s3.version_table import Version, VersionBlock
from ...util.clock import SYSTEM_CLOCK, next_timestamp
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
from .quotas import check_quotas

XML = "application/xml"
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10000
COMPOSITE, FULL_OBJECT = "COMPOSITE", "FULL_OBJECT"


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


def _checksum_type(ctx: ReqCtx, algo: str | None) -> str | None:
    """x-amz-checksum-type of a new upload, checked against its algorithm as AWS does."""
    raw = ctx.headers.get("x-amz-checksum-type")
    if raw is None:
        if algo is None:
            return None
        return FULL_OBJECT if algo == "crc64nvme" else COMPOSITE
    ctype = raw.strip().upper()
    if ctype not in (COMPOSITE, FULL_OBJECT):
        raise errors.InvalidRequest("Value for x-amz-checksum-type header is invalid.")
    if algo is None:
        raise errors.InvalidRequest("The x-amz-checksum-type header can only be used with "
                                    "the x-amz-checksum-algorithm header.")
    if ctype == FULL_OBJECT and algo not in ck.COMBINABLE:
        raise errors.InvalidRequest(f"The FULL_OBJECT checksum type cannot be used with the "
                                    f"{algo.upper()} checksum algorithm.")
    if ctype == COMPOSITE and algo == "crc64nvme":
        raise errors.InvalidRequest("The COMPOSITE checksum type cannot be used with the "
                                    "CRC64NVME checksum algorithm.")
    return ctype


def _checksum_headers(algo: str | None, ctype: str | None) -> dict[str, str]:
    if not algo:
        return {}
    return {"x-amz-checksum-algorithm": algo.upper(), "x-amz-checksum-type": ctype or COMPOSITE}


async def handle_create(ctx: ReqCtx) -> web.Response:
    g = ctx.garage
    check_object_key(ctx.key)
    stored = headers_to_store(ctx.headers, list(ctx.headers.items()))
    sse = encryption.for_write(ctx.headers)
    if sse is not None:  # each part is encrypted with the key given again on UploadPart
        stored.append(sse.stored_header())
    algo = ck.requested_algorithm({k.lower(): v for k, v in ctx.headers.items()})
    ctype = _checksum_type(ctx, algo)
    existing = await g.object_table.get(ctx.bucket_id, ctx.key.encode())
    ts = next_timestamp(SYSTEM_CLOCK, existing.newest_timestamp() if existing else None)
    uid = gen_uuid()
    v = ObjectVersion(uid, ts, UPLOADING, multipart=True, upload_headers=stored,
                      upload_checksum_algo=algo, upload_checksum_type=ctype)
    await g.mpu_table.insert(MultipartUpload(uid, ctx.bucket_id, ctx.key, ts))
    await g.version_table.insert(Version(uid, backlink=("mpu", uid)))
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [v]))
    headers = _checksum_headers(algo, ctype)
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
    checksums, SSE-C encryption). The part only counts once _finish_part records its ETag. A
    part may be empty (a multipart upload of an empty object): its version then has no
    blocks."""
    g = ctx.garage
    pn = _part_number(ctx)
    mpu, _, upload = await _load(ctx)
    sse = encryption.for_part(ctx.headers, upload.upload_headers)
    first = await read(g.config.block_size)
    part_version = gen_uuid()
    # After every earlier upload of this number, so it is the one Complete picks.
    ts = next_timestamp(SYSTEM_CLOCK, mpu.newest_part_ts(pn))
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
    _, _, upload = await _load(ctx)
    want = upload.upload_checksum_algo
    if want is not None:
        if algo is not None and algo != want:
            raise errors.InvalidRequest(
                f"Checksum Type mismatch occurred, expected checksum Type: {want}, "
                f"actual checksum Type: {algo}")
        algo = want  # computed here when the client sends none
    mpu, pn, pv, ts, size, sums, sse = await _store_part(ctx, read, algo)
    checksum = verify_body_checksums(ctx, Written(size, sums, None, None), trailers(),
                                     declared)
    if want is not None and (checksum is None or checksum[0] != want):
        raise errors.InvalidRequest(  # a trailer naming another algorithm
            f"Checksum Type mismatch occurred, expected checksum Type: {want}")
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
    start, end = copy_source_range(ctx.headers.get("x-amz-copy-source-range"), size)
    _, _, upload = await _load(ctx)
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

    algo = upload.upload_checksum_algo
    mpu, pn, pv, ts, _size, sums, sse = await _store_part(ctx, read, algo)
    assert sums.md5 is not None
    etag = encryption.etag(sse, sums.md5)
    checksum = (algo, sums.extra[algo]) if algo else None
    await _finish_part(ctx, mpu, pn, pv, ts, end - start, etag,
                       checksum[1] if checksum else None)
    return web.Response(body=xml.copy_part_xml(etag, ts, checksum), content_type=XML,
                        headers=encryption.response_headers(sse))


def copy_source_range(header: str | None, size: int) -> tuple[int, int]:
    """[start, end) from x-amz-copy-source-range: exactly bytes=first-last. A malformed
    value is InvalidArgument; one that is not inside the source is InvalidRange (416),
    what S3 conformance suites (ceph s3-tests) and Garage expect."""
    if header is None:
        return 0, size
    m = re.fullmatch(r"bytes=([0-9]{1,19})-([0-9]{1,19})", header.strip(), re.ASCII)
    if m is None:
        raise errors.InvalidArgument("The x-amz-copy-source-range value must be of the form "
                                     "bytes=first-last where first and last are the "
                                     "zero-based offsets of the first and last bytes to copy")
    first, last = int(m.group(1)), int(m.group(2))
    if first > last or last >= size:
        raise errors.InvalidRange(
            f"Range specified is not valid for source object of size: {size}")
    return first, last + 1


async def handle_complete(ctx: ReqCtx, body: bytes) -> web.Response:
    g = ctx.garage
    requested = xml.parse_complete_multipart(body)
    if not requested:
        raise errors.MalformedXML("the part list is empty")
    done = await _completed(ctx)
    if done is not None:
        return done  # a retry of a Complete that succeeded: the same answer
    mpu, obj, v = await _load(ctx)
    numbers = [n for n, _, _ in requested]
    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        raise errors.InvalidPartOrder()
    algo, ctype = v.upload_checksum_algo, v.upload_checksum_type or COMPOSITE
    have = mpu.latest_parts()
    chosen: list[MpuPart] = []
    for i, (n, etag, sums) in enumerate(requested):
        entry = have.get(n)
        if entry is None or entry[1].etag != etag.strip('"'):
            raise errors.InvalidPart(f"part {n} was not uploaded or its ETag does not match")
        part = entry[1]
        if i < len(requested) - 1 and (part.size or 0) < MIN_PART_SIZE:
            raise errors.EntityTooSmall(f"part {n} is smaller than 5 MiB and is not the last")
        for name, value in sums.items():
            # Without an upload algorithm, part checksums were verified on upload only.
            if algo is not None and (name != algo or value != part.checksum):
                raise errors.InvalidPart(f"part {n}: its {name.upper()} checksum does not "
                                         "match the one of the uploaded part")
        chosen.append(part)
    size = sum(p.size or 0 for p in chosen)
    _check_complete_headers(ctx, algo, ctype, size)
    checksum = _final_checksum(algo, ctype, chosen)
    declared = ck.parse_checksum_headers({k.lower(): val for k, val in ctx.headers.items()})
    if declared is not None:
        if checksum is None or declared[0] != checksum[0] or \
                declared[1].rsplit("-", 1)[0] != checksum[1].rsplit("-", 1)[0]:
            raise errors.BadDigest(f"The {declared[0].upper()} you specified did not match "
                                   "the calculated checksum.")
    try:
        await check_quotas(ctx, size, obj)
    except errors.AccessDenied:
        # As Garage: the upload is aborted (its parts freed), not left to retry.
        await ctx.garage.object_table.insert(Object(ctx.bucket_id, ctx.key, [
            ObjectVersion(v.uuid, v.timestamp, ABORTED, multipart=True)]))
        raise
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
    meta = ObjectMeta(size, etag, v.upload_headers, checksum, len(chosen),
                      [p.checksum or "" for p in chosen] if checksum else None)
    # A new timestamp: the last upload to complete wins over other uploads and writes of
    # the key, even those that started after this upload.
    ts = next_timestamp(SYSTEM_CLOCK, obj.newest_timestamp())
    if blocks:
        final = ObjectVersion(v.uuid, ts, COMPLETE, multipart=True, kind=FIRST_BLOCK,
                              meta=meta, first_block=blocks[min(blocks)].hash)
    else:  # every part is empty
        final = ObjectVersion(v.uuid, ts, COMPLETE, multipart=True, kind=INLINE, meta=meta,
                              inline=b"")
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [final]))
    await g.mpu_table.insert(MultipartUpload(
        mpu.upload_id, mpu.bucket_id, mpu.key, mpu.timestamp, deleted=True,
        completed=[etag, checksum[0] if checksum else None,
                   checksum[1] if checksum else None]))
    return _complete_response(ctx, v.uuid, etag, checksum)


def _complete_response(ctx: ReqCtx, uid: bytes, etag: str,
                       checksum: tuple[str, str] | None) -> web.Response:
    location = f"/{ctx.bucket_name}/{ctx.key}"
    return web.Response(body=xml.complete_multipart_xml(location, ctx.bucket_name or "",
                                                        ctx.key, etag, checksum),
                        content_type=XML, headers={"x-amz-version-id": uid.hex()})


async def _completed(ctx: ReqCtx) -> web.Response | None:
    """The answer of an earlier successful Complete of this upload, if there was one."""
    uid = _upload_id(ctx)
    mpu = await ctx.garage.mpu_table.get(uid)
    if mpu is None or not mpu.completed or mpu.bucket_id != ctx.bucket_id \
            or mpu.key != ctx.key:
        return None
    etag, algo, value = mpu.completed[:3]
    return _complete_response(ctx, uid, str(etag),
                              (str(algo), str(value)) if algo and value else None)


def _check_complete_headers(ctx: ReqCtx, algo: str | None, ctype: str, size: int) -> None:
    raw_type = ctx.headers.get("x-amz-checksum-type")
    if raw_type is not None and (algo is None or raw_type.strip().upper() != ctype):
        raise errors.InvalidRequest(f"The upload was created with the checksum type "
                                    f"{ctype if algo else 'none'}, not {raw_type.strip()}.")
    raw_size = ctx.headers.get("x-amz-mp-object-size")
    if raw_size is not None:
        if not re.fullmatch(r"[0-9]{1,19}", raw_size.strip(), re.ASCII):
            raise errors.InvalidArgument("Value for x-amz-mp-object-size header is invalid.")
        if int(raw_size) != size:
            raise errors.InvalidRequest(f"The provided 'x-amz-mp-object-size' header value "
                                        f"{raw_size.strip()} does not match what was "
                                        f"computed: {size}")


def _final_checksum(algo: str | None, ctype: str,
                    parts: list[MpuPart]) -> tuple[str, str] | None:
    """COMPOSITE: checksum of the concatenated part checksums, '-N'. FULL_OBJECT: the CRC
    of the whole object, combined from the parts' CRCs and sizes."""
    if not algo or not parts or any(p.checksum is None for p in parts):
        return None
    if ctype == FULL_OBJECT:
        return algo, ck.combine_b64(algo, [(p.checksum or "", p.size or 0) for p in parts])
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
    algo = v.upload_checksum_algo
    infos = [xml.PartInfo(n, p.etag or "", p.size or 0, t,
                          (algo, p.checksum) if algo and p.checksum else None)
             for n, t, p in parts]
    body = xml.list_parts_xml(ctx.bucket_name or "", ctx.key, mpu.upload_id.hex(), infos,
                              part_number_marker=marker or None,
                              next_marker=parts[-1][0] if truncated and parts else None,
                              max_parts=max_parts, truncated=truncated,
                              owner_id=ctx.api_key.key_id, checksum_algorithm=algo,
                              checksum_type=(v.upload_checksum_type or COMPOSITE)
                              if algo else None)
    return web.Response(body=body, content_type=XML)
