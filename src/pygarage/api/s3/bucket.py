"""Bucket-level endpoints: ListBuckets (paged by name), CreateBucket, HeadBucket, DeleteBucket,
GetBucketLocation, GetBucketVersioning."""

from __future__ import annotations

from aiohttp import web

from ...model.helpers.bucket import BucketHelper
from ...model.helpers.bucket_lifecycle import NameTaken
from ...model.helpers.errors import BucketNotEmptyErr
from ...model.key_table import Key
from ..common import errors
from . import xml
from .context import ReqCtx
from .listing import decode_v2_token, encode_v2_token
from .names import check_bucket_name

XML = "application/xml"
MAX_BUCKETS = 10000


async def handle_list_buckets(ctx: ReqCtx) -> web.Response:
    g, key = ctx.garage, ctx.api_key
    bh = BucketHelper(g)
    out: dict[str, int] = {}
    for bucket_hex, (_, perm) in key.authorized_buckets.items():
        if not any(perm):
            continue
        b = await bh.get(bytes.fromhex(bucket_hex))
        if b is None:
            continue
        for alias in b.global_aliases():
            out[alias] = b.created
    for alias, (_, target) in key.local_aliases.items():
        if target:
            b = await bh.get(bytes.fromhex(target))
            if b is not None and any(key.permissions(b.id)):
                out[alias] = b.created
    q = ctx.query
    max_buckets = _max_buckets(q.get("max-buckets"))
    token = q.get("continuation-token") or None
    prefix = q.get("prefix", "")
    after = decode_v2_token(token) if token is not None else None
    region = q.get("bucket-region")
    names = sorted((n, c) for n, c in out.items()
                   if n.startswith(prefix) and (after is None or n > after)
                   and (region is None or region == ctx.region))
    page = names[:max_buckets] if max_buckets is not None else names
    next_token = encode_v2_token(page[-1][0]) if len(names) > len(page) else None
    body = xml.list_buckets_xml(key.key_id, str(key.name[1]), page,
                                continuation_token=next_token,
                                prefix=prefix if "prefix" in q else None,
                                region=ctx.region)
    return web.Response(body=body, content_type=XML)


def _max_buckets(raw: str | None) -> int | None:
    """max-buckets: 1 to 10000, as AWS accepts; None (all buckets) when absent."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5
            and 1 <= int(raw) <= MAX_BUCKETS):
        raise errors.InvalidArgument(f"max-buckets must be an integer between 1 and "
                                     f"{MAX_BUCKETS}")
    return int(raw)


async def handle_create_bucket(ctx: ReqCtx, body: bytes) -> web.Response:
    name = ctx.bucket_name or ""
    g, key = ctx.garage, ctx.api_key
    check_bucket_name(name, g.config.allow_punycode)
    location = xml.parse_create_bucket(body)
    if location is not None and location != ctx.region:
        raise errors.InvalidArgument(  # AWS: InvalidLocationConstraint
            f"LocationConstraint must be '{ctx.region}', not '{location}'")
    bh = BucketHelper(g)
    existing = await bh.resolve(name, key)
    if existing is None:
        if not key.allow_create_bucket[1]:
            raise errors.AccessDenied("this key is not allowed to create buckets "
                                      "(garage key allow --create-bucket)")
        try:
            # Checks the name is free and claims it in one step: of two concurrent
            # creates of one name, exactly one gets here without NameTaken.
            await bh.create_local(key, name, (True, True, True))
        except NameTaken as taken:
            existing = taken.bucket_id
            key = await g.key_table.get(key.key_id.encode()) or key
    if existing is not None:
        r, w, o = key.permissions(existing)
        if w or o:
            raise errors.BucketAlreadyOwnedByYou()
        raise errors.BucketAlreadyExists()
    return web.Response(status=200, headers={"Location": "/" + name})


async def handle_delete_bucket(ctx: ReqCtx) -> web.Response:
    g, key = ctx.garage, ctx.api_key
    assert ctx.bucket is not None
    bh = BucketHelper(g)
    b = ctx.bucket
    name = ctx.bucket_name or ""
    n_aliases = len(b.global_aliases()) + len(b.local_alias_list())
    is_local = key.local_alias(name) == b.id
    if n_aliases > 1:
        # Other names still point to this bucket: only this name goes.
        fresh: Key | None = await g.key_table.get(key.key_id.encode())
        if is_local and fresh is not None:
            await bh.unalias_local(b, fresh, name)
        else:
            await bh.unalias_global(b, name)
        return web.Response(status=204)
    try:
        await bh.delete(b)
    except BucketNotEmptyErr:
        raise errors.BucketNotEmpty() from None
    return web.Response(status=204)


def handle_location(ctx: ReqCtx) -> web.Response:
    return web.Response(body=xml.location_xml(ctx.region), content_type=XML)


def handle_get_versioning(ctx: ReqCtx) -> web.Response:
    return web.Response(body=xml.versioning_xml(), content_type=XML)
