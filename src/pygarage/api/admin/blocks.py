"""Admin endpoints about this node's blocks: ListBlockErrors, GetBlockInfo, RetryBlockResync,
PurgeBlocks (Garage's admin API v2, answered per node through node_ops.multi)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from ...block.rc import RC_TREE
from ...block.resync import ERR_TREE
from ...model.garage import Garage
from ...model.s3.block_ref_table import BlockRef
from ...model.s3.mpu_table import MultipartUpload
from ...model.s3.object_table import ABORTED, Object, ObjectVersion
from ...model.s3.version_table import Version
from ...net.peer import RpcError
from ...table.data import tree_key
from ...util.clock import now_msec
from ...util.ids import HASH_LEN, is_hex
from .errors import AdminError, bad_request

# fullmatch: "$" would also let a final newline through (bytes.fromhex then fails).
_HEX = re.compile(r"[0-9a-fA-F]{1,64}")
_MAX_REFS = 10_000


def _full_hash(s: Any) -> bytes:
    if not is_hex(s, 64):
        raise bad_request("block hashes must be 64 hex digits")
    return bytes.fromhex(s)


def find_block(g: Garage, prefix: str) -> bytes:
    """A block hash from its full hex form or an unambiguous prefix of it, among the blocks
    this node has a refcount or resync error for."""
    if not isinstance(prefix, str) or not _HEX.fullmatch(prefix):
        raise bad_request("blockHash must be hex (a hash or a prefix of one)")
    prefix = prefix.lower()
    if len(prefix) == 64:
        return bytes.fromhex(prefix)
    # The smallest hash with this prefix: an odd prefix is completed with a 0 digit.
    start = bytes.fromhex(prefix + "0" * (len(prefix) % 2))
    found: set[bytes] = set()
    for tree in (RC_TREE, ERR_TREE):
        for k, _ in g.db.range(tree, start, None, 64):
            if not k.hex().startswith(prefix):
                break
            found.add(k)
    if not found:
        raise AdminError(404, "NoSuchBlock", f"no block found with prefix {prefix}")
    if len(found) > 1:
        raise bad_request(f"{len(found)} blocks match prefix {prefix}: give more digits")
    return found.pop()


def list_block_errors(g: Garage) -> list[dict[str, Any]]:
    now = now_msec()
    bm = g.block_manager
    return [{"blockHash": h.hex(), "refcount": bm.rc.get(h), "errorCount": rec.errors,
             "lastTrySecsAgo": max(0, now - rec.last_try_ms) // 1000,
             "nextTryInSecs": max(0, rec.next_try_ms - now) // 1000}
            for h, rec in bm.resync.list_errors()]


def _refs(g: Garage, h: bytes) -> list[BlockRef]:
    """Every block_ref entry of the block on this node, deleted ones included."""
    t = g.block_ref_table.data
    lo = tree_key(h, b"")
    rows = g.db.range(t.store, lo, lo + b"\xff" * (HASH_LEN + 1), _MAX_REFS)
    return [r for r in (t.schema.decode(v) for _, v in rows) if r.block == h]


async def block_info(g: Garage, body: dict[str, Any]) -> dict[str, Any]:
    h = find_block(g, body.get("blockHash"))  # type: ignore[arg-type]
    bm = g.block_manager
    versions = []
    for ref in _refs(g, h):
        ver = g.version_table.data.read_entry(ref.version, b"")
        out: dict[str, Any] = {"versionId": ref.version.hex(), "refDeleted": ref.deleted,
                               "versionDeleted": bool(ver is not None and ver.deleted),
                               "garbageCollected": ver is None, "backlink": None}
        if ver is not None and ver.backlink:
            out["backlink"] = _backlink(g, ver.backlink)
        versions.append(out)
    rc = bm.rc.get_entry(h)
    err = bm.resync.error_of(h)
    nodes = bm.storage_nodes(h) if g.system.layout_ready() else []
    return {"blockHash": h.hex(), "refcount": rc.count, "versions": versions,
            "present": bm.store.has(h), "storageNodes": nodes,
            "presentOn": await _present_on(g, h, nodes),
            "resyncErrors": err.errors if err is not None else 0}


async def _present_on(g: Garage, h: bytes, nodes: list[str]) -> dict[str, bool | None]:
    """Which storage nodes hold a file for the block (None: no answer)."""
    bm = g.block_manager

    async def one(n: str) -> bool | None:
        if n == g.system.node_id:
            return bm.store.has(h)
        try:
            return await bm.client.has(n, h)
        except (RpcError, TimeoutError, OSError):
            return None
    answers = await asyncio.gather(*(one(n) for n in nodes))
    return dict(zip(nodes, answers, strict=True))


def _backlink(g: Garage, link: tuple[Any, ...]) -> dict[str, Any] | None:
    if link[0] == "object" and len(link) == 3:
        return {"object": {"bucketId": link[1].hex(), "key": link[2]}}
    if link[0] == "mpu" and len(link) == 2:
        mpu = g.mpu_table.data.read_entry(link[1], b"")
        return {"upload": {"uploadId": link[1].hex(), "uploadDeleted": bool(mpu and mpu.deleted),
                           "uploadGarbageCollected": mpu is None,
                           "bucketId": mpu.bucket_id.hex() if mpu else None,
                           "key": mpu.key if mpu else None}}
    return None


async def retry_block_resync(g: Garage, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("all") is True:
        if "blockHashes" in body:
            raise bad_request("give either all: true or blockHashes, not both")
        return {"count": await g.block_manager.resync.retry_now(None)}
    hashes = body.get("blockHashes")
    if not isinstance(hashes, list) or not hashes:
        raise bad_request("give all: true or a non-empty list blockHashes")
    try:
        n = await g.block_manager.resync.retry_now([_full_hash(x) for x in hashes])
    except ValueError as e:
        raise bad_request(str(e)) from None
    return {"count": n}


async def purge_blocks(g: Garage, body: Any) -> dict[str, Any]:
    """Garage's `block purge`: delete every object version and multipart upload using
    these blocks (unrecoverable data), then their references."""
    if not isinstance(body, list):
        raise bad_request("the body is a list of block hashes")
    hashes = [_full_hash(x) for x in body]
    objects = versions = uploads = 0
    for h in hashes:
        for ref in _refs(g, h):
            ver = await g.version_table.get(ref.version)
            if ver is not None and not ver.deleted:
                link = ver.backlink
                if link and link[0] == "object" and len(link) == 3:
                    objects += await _abort_object_version(g, link[1], link[2], ver.uuid)
                elif link and link[0] == "mpu" and len(link) == 2:
                    uploads += await _abort_upload(g, link[1])
                await g.version_table.insert(Version(ver.uuid, deleted=True))
                versions += 1
            if not ref.deleted:
                await g.block_ref_table.insert(BlockRef(h, ref.version, deleted=True))
    return {"blocksPurged": len(hashes), "objectsDeleted": objects,
            "uploadsDeleted": uploads, "versionsDeleted": versions}


async def _abort_object_version(g: Garage, bucket: bytes, key: str, vid: bytes) -> int:
    obj = await g.object_table.get(bucket, key.encode())
    if obj is None:
        return 0
    for v in obj.versions:
        if v.uuid == vid and v.state != ABORTED:
            await g.object_table.insert(Object(bucket, key, [ObjectVersion(
                v.uuid, v.timestamp, ABORTED, multipart=v.multipart)]))
            return 1
    return 0


async def _abort_upload(g: Garage, upload_id: bytes) -> int:
    mpu = await g.mpu_table.get(upload_id)
    if mpu is None or mpu.deleted:
        return 0
    await _abort_object_version(g, mpu.bucket_id, mpu.key, upload_id)
    await g.mpu_table.insert(MultipartUpload(upload_id, mpu.bucket_id, mpu.key,
                                             mpu.timestamp, deleted=True))
    return 1
