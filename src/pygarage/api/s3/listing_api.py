"""ListObjects (v1, v2), ListObjectVersions (current objects, version id null) and
ListMultipartUploads, on top of the pure paging in listing.py."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from aiohttp import web

from ...model.s3.object_table import UPLOADING, Object
from ..common import errors
from ..common.wire import parse_uint
from . import xml
from .context import ReqCtx
from .listing import ListPage, ObjectSummary, decode_v2_token, encode_v2_token, list_page

XML = "application/xml"


def _max(q: dict[str, str], name: str, default: int = 1000) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    return min(parse_uint(raw, name), 1000)


def _encoding(q: dict[str, str]) -> bool:
    enc = q.get("encoding-type")
    if enc is not None and enc != "url":
        raise errors.InvalidArgument("encoding-type must be url")
    return enc == "url"


def _summary(o: Object) -> ObjectSummary | None:
    v = o.current()
    if v is None or v.meta is None:
        return None
    etag = v.meta.etag
    return ObjectSummary(o.key, v.meta.size, etag, v.timestamp)


async def _objects_page(ctx: ReqCtx, prefix: str, delimiter: str | None,
                        start_after: str | None, max_keys: int) -> ListPage[ObjectSummary]:
    async def fetch(start: str, limit: int) -> list[ObjectSummary]:
        objs = await ctx.garage.object_table.get_range(
            ctx.bucket_id, start.encode("utf-8", "surrogatepass"), "data", limit)
        return [s for o in objs if (s := _summary(o)) is not None]

    return await list_page(fetch, prefix=prefix, delimiter=delimiter, start_after=start_after,
                           max_keys=max_keys)


def _owner(ctx: ReqCtx) -> tuple[str, str]:
    return (ctx.api_key.key_id, str(ctx.api_key.name[1]))


async def handle_list_objects(ctx: ReqCtx, v2: bool) -> web.Response:
    q = ctx.query
    enc = _encoding(q)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter") or None
    max_keys = _max(q, "max-keys")
    bucket = ctx.bucket_name or ""
    if not v2:
        marker = q.get("marker") or None
        page = await _objects_page(ctx, prefix, delimiter, marker, max_keys)
        body = xml.list_objects_v1_xml(page, bucket=bucket, prefix=prefix, marker=marker,
                                       delimiter=delimiter, max_keys=max_keys,
                                       encoding_url=enc, owner=_owner(ctx))
        return web.Response(body=body, content_type=XML)
    token = q.get("continuation-token") or None  # empty: no token, as AWS reads it
    start_after = q.get("start-after") or None
    start = decode_v2_token(token) if token is not None else start_after
    page = await _objects_page(ctx, prefix, delimiter, start, max_keys)
    next_token = encode_v2_token(page.next_marker) if page.truncated and page.next_marker \
        else None
    body = xml.list_objects_v2_xml(
        page, bucket=bucket, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
        encoding_url=enc, continuation_token=token, next_continuation_token=next_token,
        start_after=start_after, key_count=len(page.contents) + len(page.common_prefixes),
        fetch_owner=q.get("fetch-owner") == "true", owner=_owner(ctx))
    return web.Response(body=body, content_type=XML)


async def handle_list_object_versions(ctx: ReqCtx) -> web.Response:
    q = ctx.query
    enc = _encoding(q)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter") or None
    max_keys = _max(q, "max-keys")
    key_marker = q.get("key-marker") or None
    page = await _objects_page(ctx, prefix, delimiter, key_marker, max_keys)
    body = xml.list_object_versions_xml(
        page, bucket=ctx.bucket_name or "", prefix=prefix, key_marker=key_marker,
        delimiter=delimiter, max_keys=max_keys, encoding_url=enc,
        next_key_marker=page.next_marker, version_id_marker=q.get("version-id-marker"),
        owner=_owner(ctx))
    return web.Response(body=body, content_type=XML)


@dataclass(frozen=True)
class _Upload:
    key: str
    upload_id: str
    initiated_ms: int


async def handle_list_multipart_uploads(ctx: ReqCtx) -> web.Response:
    q = ctx.query
    enc = _encoding(q)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter") or None
    max_uploads = _max(q, "max-uploads")
    key_marker = q.get("key-marker") or None
    id_marker = q.get("upload-id-marker") or None

    async def fetch(start: str, limit: int) -> list[_Upload]:
        objs = await ctx.garage.object_table.get_range(
            ctx.bucket_id, start.encode("utf-8", "surrogatepass"), "uploading", limit)
        # Several uploads of one key are listed in upload id order (list_page's tiebreak).
        return [_Upload(o.key, v.uuid.hex(), v.timestamp) for o in objs
                for v in sorted(o.versions, key=lambda v: v.uuid)
                if v.state == UPLOADING and v.multipart]

    page = await list_page(fetch, prefix=prefix, delimiter=delimiter, start_after=key_marker,
                           max_keys=max_uploads, tiebreak=lambda u: u.upload_id,
                           start_after_tiebreak=id_marker if key_marker else None)
    last = page.contents[-1] if page.contents and not page.last_is_prefix else None
    body = xml.list_multipart_uploads_xml(
        ctx.bucket_name or "", [xml.UploadInfo(u.key, u.upload_id, u.initiated_ms)
                                for u in page.contents],
        page.common_prefixes, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
        upload_id_marker=id_marker,
        next_key_marker=page.next_marker if page.truncated else None,
        next_upload_id_marker=last.upload_id if page.truncated and last else None,
        max_uploads=max_uploads, truncated=page.truncated, encoding_url=enc,
        owner=_owner(ctx))
    return web.Response(body=body, content_type=XML)


def decode_copy_source(raw: str) -> tuple[str, str]:
    """x-amz-copy-source: '/bucket/key' or 'bucket/key', percent-encoded."""
    # Header values arrive decoded with surrogateescape: back to the bytes sent, then the
    # percent-decoded key must be UTF-8 (a replacement character would name another key).
    try:
        src = unquote_to_bytes(raw.split("?", 1)[0].encode("utf-8", "surrogateescape")) \
            .decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidArgument("x-amz-copy-source is not valid UTF-8") from None
    src = src[1:] if src.startswith("/") else src
    bucket, sep, key = src.partition("/")
    if not sep or not bucket or not key:
        raise errors.InvalidArgument("invalid x-amz-copy-source: expected bucket/key")
    return bucket, key
