"""CopyObject: the new version shares the source's blocks (refcounts go up), no data moves.
UploadPartCopy lives in multipart.py (it re-chunks a byte range)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

from ...model.helpers.bucket import BucketHelper
from ...model.s3.block_ref_table import BlockRef
from ...model.s3.object_table import (
    COMPLETE,
    FIRST_BLOCK,
    INLINE,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from ...model.s3.version_table import Version
from ...util.clock import SYSTEM_CLOCK, next_timestamp
from ...util.ids import gen_uuid
from ..common import errors
from ..common.wire import check_header_value
from . import encryption, xml
from .conditions import check_conditions
from .context import ReqCtx
from .listing_api import decode_copy_source
from .meta import headers_to_store
from .names import check_object_key
from .object_writer import copy_reencrypt
from .quotas import check_quotas


async def resolve_copy_source(ctx: ReqCtx) -> tuple[bytes, Object, ObjectVersion]:
    """Source bucket (needs read permission) and its current version, preconditions checked."""
    bucket, key = decode_copy_source(ctx.headers.get("x-amz-copy-source", ""))
    bid = await BucketHelper(ctx.garage).resolve(bucket, ctx.api_key)
    if bid is None:
        raise errors.NoSuchBucket(f"source bucket {bucket!r} does not exist")
    if not ctx.api_key.permissions(bid)[0]:
        raise errors.AccessDenied("no read permission on the source bucket")
    obj = await ctx.garage.object_table.get(bid, key.encode())
    v = obj.current() if obj else None
    if obj is None or v is None or v.meta is None:
        raise errors.NoSuchKey("the source object does not exist")
    # "bucket/key?versionId=...": only the current version (or "null") exists.
    source_query = ctx.headers.get("x-amz-copy-source", "").partition("?")[2]
    vid = dict(parse_qsl(source_query, keep_blank_values=True)).get("versionId")
    if vid is not None and vid not in ("null", v.uuid.hex()):
        raise errors.NoSuchVersion("the source version does not exist")
    lower = {k.lower(): val for k, val in ctx.headers.items()}
    check_conditions(lower, v.meta.etag, v.timestamp, copy_source=True)
    return bid, obj, v


async def handle_copy_object(ctx: ReqCtx) -> web.Response:
    g = ctx.garage
    check_object_key(ctx.key)
    src_bid, src_obj, src = await resolve_copy_source(ctx)
    assert src.meta is not None
    directive = ctx.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise errors.InvalidArgument("x-amz-metadata-directive must be COPY or REPLACE")
    src_sse = encryption.for_read(ctx.headers, src, copy_source=True)
    dst_sse = encryption.for_write(ctx.headers)
    same = src_bid == ctx.bucket_id and src_obj.key == ctx.key
    if same and directive == "COPY" and src_sse is None and dst_sse is None:
        raise errors.InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect "
            "location or encryption attributes.")
    if directive == "REPLACE":
        headers = headers_to_store(ctx.headers, list(ctx.headers.items()))
    else:
        headers = [h for h in src.meta.headers if h[0] != "x-amz-website-redirect-location"]
        redirect = ctx.headers.get("x-amz-website-redirect-location")
        if redirect:
            headers.append(("x-amz-website-redirect-location",
                            check_header_value(redirect, "x-amz-website-redirect-location")))
    if src_sse is not None or dst_sse is not None:
        return await copy_reencrypt(ctx, src, src_sse, dst_sse, headers)
    existing = await g.object_table.get(ctx.bucket_id, ctx.key.encode())
    ts = next_timestamp(SYSTEM_CLOCK, existing.newest_timestamp() if existing else None)
    await check_quotas(ctx, src.meta.size, existing)
    vid = gen_uuid()
    meta = ObjectMeta(src.meta.size, src.meta.etag, headers, src.meta.checksum, src.meta.parts,
                      src.meta.part_checksums)
    if src.kind == INLINE:
        done = ObjectVersion(vid, ts, COMPLETE, kind=INLINE, meta=meta, inline=src.inline)
    else:
        src_ver = await g.version_table.get(src.uuid)
        if src_ver is None or src_ver.deleted:
            raise errors.NoSuchKey("the source object's data is gone")
        # New references first: the blocks stay alive even if the source is deleted now.
        await g.block_ref_table.insert_many(BlockRef(b.hash, vid)
                                            for b in src_ver.blocks.values())
        await g.version_table.insert(Version(vid, blocks=dict(src_ver.blocks),
                                             backlink=("object", ctx.bucket_id, ctx.key)))
        done = ObjectVersion(vid, ts, COMPLETE, kind=FIRST_BLOCK, meta=meta,
                             first_block=src.first_block)
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [done]))
    headers_out = {"x-amz-version-id": vid.hex(),
                   "x-amz-copy-source-version-id": src.uuid.hex()}
    return web.Response(body=xml.copy_object_xml(meta.etag, ts),
                        content_type="application/xml", headers=headers_out)
