"""Admin endpoints about a bucket's objects: CleanupIncompleteUploads and InspectObject
(Garage's admin API v2 shapes), read and written through the replicated tables."""

from __future__ import annotations

import asyncio
from typing import Any

from ...model.bucket_table import Bucket
from ...model.garage import Garage
from ...model.helpers.bucket import BucketHelper
from ...model.helpers.errors import HelperError
from ...model.helpers.uploads import cleanup_incomplete_uploads
from ...model.s3.mpu_table import MultipartUpload
from ...model.s3.object_table import (
    ABORTED,
    DELETE_MARKER,
    INLINE,
    UPLOADING,
    ObjectVersion,
)
from ...model.s3.version_table import BlockKey, Version, VersionBlock
from ...util.clock import msec_to_rfc3339, now_msec
from ..s3.encryption import is_encrypted, strip_stored
from .buckets_keys import helper_error
from .errors import AdminError, bad_request

MAX_U64 = 2**64 - 1


def _bucket_id(v: Any, field: str) -> bytes:
    try:
        b = bytes.fromhex(v) if isinstance(v, str) else b""
    except ValueError:
        b = b""
    if len(b) != 32:
        raise bad_request(f"{field} must be a bucket id (64 hex digits)")
    return b


async def _existing(g: Garage, bucket_id: bytes) -> Bucket:
    try:
        return await BucketHelper(g).get_existing(bucket_id)
    except HelperError as e:
        raise helper_error(e) from None


async def cleanup(g: Garage, body: dict[str, Any]) -> dict[str, int]:
    bucket_id = _bucket_id(body["bucketId"], "body.bucketId")
    older = body["olderThanSecs"]
    if not 0 <= older <= MAX_U64:
        raise bad_request(f"body.olderThanSecs must be between 0 and {MAX_U64}")
    await _existing(g, bucket_id)
    cutoff = now_msec() - min(older, now_msec() // 1000) * 1000
    return {"uploadsDeleted": await cleanup_incomplete_uploads(g, bucket_id, cutoff)}


async def inspect_object(g: Garage, query: dict[str, str]) -> dict[str, Any]:
    if "bucketId" not in query or "key" not in query:
        raise bad_request("give bucketId and key")
    bucket_id = _bucket_id(query["bucketId"], "bucketId")
    await _existing(g, bucket_id)
    obj = await g.object_table.get(bucket_id, query["key"].encode("utf-8", "surrogatepass"))
    if obj is None:
        raise AdminError(404, "NoSuchKey", "the object does not exist")
    blocks = await asyncio.gather(*(_blocks(g, v) for v in obj.versions))
    return {"bucketId": bucket_id.hex(), "key": obj.key,
            "versions": [_version(v, b) for v, b in zip(obj.versions, blocks, strict=True)]}


def _version(v: ObjectVersion, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    meta = v.meta
    out: dict[str, Any] = {
        "uuid": v.uuid.hex(), "timestamp": msec_to_rfc3339(v.timestamp),
        "encrypted": v.state != ABORTED and is_encrypted(v),
        "uploading": v.state == UPLOADING, "aborted": v.state == ABORTED,
        "deleteMarker": v.kind == DELETE_MARKER and v.state != ABORTED,
        "inline": v.kind == INLINE and v.state != ABORTED,
        "multipart": v.multipart,
        "size": meta.size if meta is not None and v.state != ABORTED else None,
        "etag": meta.etag if meta is not None and v.state != ABORTED else None}
    if v.state != ABORTED:
        headers = meta.headers if meta is not None else v.upload_headers
        if strip_stored(headers):
            out["headers"] = [list(h) for h in strip_stored(headers)]
    if blocks:
        out["blocks"] = blocks
    return out


def _block_list(blocks: dict[BlockKey, VersionBlock]) -> list[dict[str, Any]]:
    return [{"partNumber": p, "offset": o, "hash": b.hash.hex(), "size": b.size}
            for (p, o), b in sorted(blocks.items())]


async def _blocks(g: Garage, v: ObjectVersion) -> list[dict[str, Any]]:
    """The version's blocks from the version table; for a multipart upload in progress,
    those of its parts (the newest upload of each part number, as Complete picks)."""
    if v.state == UPLOADING and v.multipart:
        mpu = await g.mpu_table.get(v.uuid)
        return await _part_blocks(g, mpu) if mpu is not None and not mpu.deleted else []
    if v.state != ABORTED and v.kind in (DELETE_MARKER, INLINE):
        return []
    ver = await g.version_table.get(v.uuid)
    return _block_list(ver.blocks) if ver is not None and not ver.deleted else []


async def _part_blocks(g: Garage, mpu: MultipartUpload) -> list[dict[str, Any]]:
    newest: dict[int, tuple[int, bytes]] = {}
    for (pn, ts), part in mpu.parts.items():
        if part.etag is not None and (pn not in newest or ts > newest[pn][0]):
            newest[pn] = (ts, part.version)
    parts = sorted(newest.items())
    versions: list[Version | None] = list(await asyncio.gather(
        *(g.version_table.get(pv) for _, (_, pv) in parts)))
    blocks: dict[BlockKey, VersionBlock] = {}
    for (pn, _), ver in zip(parts, versions, strict=True):
        if ver is not None and not ver.deleted:
            for (_, off), b in ver.blocks.items():
                blocks[(pn, off)] = b
    return _block_list(blocks)
