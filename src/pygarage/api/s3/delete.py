"""DeleteObject and DeleteObjects: a delete marker newer than every version."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ...model.s3.object_table import COMPLETE, DELETE_MARKER, Object, ObjectVersion
from ...util.clock import SYSTEM_CLOCK, next_timestamp
from ...util.ids import gen_uuid
from ...util.tasks import drop
from ..common import errors
from . import xml
from .context import ReqCtx
from .names import check_object_key


async def delete_object(ctx: ReqCtx, key: str, version_id: str | None) -> bool:
    """-> True if something was deleted. Deleting a missing key is a success (S3)."""
    if version_id is None:
        return await _delete_current(ctx, key)
    g = ctx.garage
    obj = await g.object_table.get(ctx.bucket_id, key.encode())
    if obj is None:
        return False
    cur = obj.current()
    if cur is None:
        return False
    if version_id is not None and version_id not in ("null", cur.uuid.hex()):
        return False  # no such version: nothing to do
    ts = next_timestamp(SYSTEM_CLOCK, obj.newest_timestamp())
    marker = ObjectVersion(gen_uuid(), ts, COMPLETE, kind=DELETE_MARKER)
    await g.object_table.insert(Object(ctx.bucket_id, key, [marker]))
    return True


async def _delete_current(ctx: ReqCtx, key: str) -> bool:
    """Without a version id, in one round trip: a delete marker stamped now is written
    while the key's entry is read. A marker on a key with no current version is a
    tombstone GC removes later; a version as new as the marker or newer (a clock ahead
    elsewhere) gets the same marker again with a later timestamp."""
    g = ctx.garage
    lookup = asyncio.ensure_future(g.object_table.get(ctx.bucket_id, key.encode()))
    marker = ObjectVersion(gen_uuid(), next_timestamp(SYSTEM_CLOCK, None), COMPLETE,
                           kind=DELETE_MARKER)
    try:
        await g.object_table.insert(Object(ctx.bucket_id, key, [marker]))
        obj = await lookup
    finally:
        drop(lookup)
    if obj is None:
        return False
    newest = obj.newest_timestamp(other_than=marker.uuid)
    if newest is not None and newest >= marker.timestamp:
        again = ObjectVersion(marker.uuid, newest + 1, COMPLETE, kind=DELETE_MARKER)
        await g.object_table.insert(Object(ctx.bucket_id, key, [again]))
    before = Object(obj.bucket_id, obj.key, [v for v in obj.versions if v.uuid != marker.uuid])
    return before.current() is not None


async def handle_delete_object(ctx: ReqCtx) -> web.Response:
    await delete_object(ctx, ctx.key, ctx.query.get("versionId"))
    return web.Response(status=204)


async def handle_delete_objects(ctx: ReqCtx, body: bytes) -> web.Response:
    quiet, items = xml.parse_delete_objects(body)
    deleted: list[tuple[str, ...]] = []
    failed: list[tuple[str, str, str]] = []
    for key, version in items:
        try:
            check_object_key(key)
            await delete_object(ctx, key, version)
            if not quiet:
                deleted.append((key, version) if version else (key,))
        except errors.S3Error as e:
            failed.append((key, e.code, e.message))
    return web.Response(body=xml.delete_result_xml(deleted, failed),
                        content_type="application/xml")
