"""The deletion cascade, without sockets: object -> version -> block_ref -> refcount ->
block file deleted after the delay; and the counters follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from pygarage.model.garage import Garage
from pygarage.model.s3.block_ref_table import BlockRef
from pygarage.model.s3.object_table import (
    COMPLETE,
    DELETE_MARKER,
    FIRST_BLOCK,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from pygarage.model.s3.version_table import Version, VersionBlock
from pygarage.testing.local_garage import drain, local_garage


@pytest.fixture(params=["sqlite", "lmdb"])
def garage(tmp_path: Path, request: pytest.FixtureRequest) -> Garage:
    g = local_garage(tmp_path, buckets=(b"B" * 32, b"C" * 32), db_engine=request.param)
    g.block_manager.rc.delay_ms = 0
    return g


async def _put(g: Garage, bucket: bytes, key: str, data: bytes, uuid: bytes, ts: int) -> bytes:
    h, block = g.block_manager.pack(data)
    await g.object_table.insert(Object(bucket, key, [ObjectVersion(uuid, ts, UPLOADING)]))
    await g.block_ref_table.insert(BlockRef(h, uuid))
    await g.block_manager.put_block(h, block)
    await g.version_table.insert(Version(uuid, blocks={(0, 0): VersionBlock(h, len(data))}))
    meta = ObjectMeta(len(data), "etag", [])
    await g.object_table.insert(Object(bucket, key, [ObjectVersion(
        uuid, ts, COMPLETE, kind=FIRST_BLOCK, meta=meta, first_block=h)]))
    return h


async def test_overwrite_then_delete_frees_blocks(garage: Garage) -> None:
    g, bucket = garage, b"B" * 32
    h1 = await _put(g, bucket, "k", b"one" * 5000, b"1" * 32, 1000)
    assert g.block_manager.rc.get(h1) == 1
    assert g.counters.get(bucket)["objects"] == 1
    h2 = await _put(g, bucket, "k", b"two" * 5000, b"2" * 32, 2000)
    await drain(g)
    assert g.block_manager.rc.get(h1) == 0 and g.block_manager.rc.get(h2) == 1
    assert g.counters.get(bucket) == {"objects": 1, "bytes": 15000, "unfinished_uploads": 0,
                                      "mpu_parts": 0, "mpu_bytes": 0}
    assert await g.block_manager.gc_once() == 1
    assert g.block_manager.store.find(h1) is None and g.block_manager.store.find(h2)

    marker = ObjectVersion(b"3" * 32, 3000, COMPLETE, kind=DELETE_MARKER)
    await g.object_table.insert(Object(bucket, "k", [marker]))
    await drain(g)
    obj = await g.object_table.get(bucket, b"k")
    assert obj is not None and obj.is_tombstone() and obj.current() is None
    assert g.counters.get(bucket)["objects"] == 0
    assert await g.block_manager.gc_once() == 1
    assert g.block_manager.store.find(h2) is None


async def test_shared_block_survives_one_delete(garage: Garage) -> None:
    g, bucket = garage, b"C" * 32
    data = b"same content" * 1000
    h = await _put(g, bucket, "a", data, b"a" * 32, 1000)
    assert await _put(g, bucket, "b", data, b"b" * 32, 1000) == h
    assert g.block_manager.rc.get(h) == 2
    await g.object_table.insert(Object(bucket, "a", [ObjectVersion(
        b"d" * 32, 2000, COMPLETE, kind=DELETE_MARKER)]))
    await drain(g)
    assert g.block_manager.rc.get(h) == 1
    assert await g.block_manager.gc_once() == 0
    assert await g.block_manager.get_block(h) == data


@pytest.mark.parametrize("stage", ["ref", "block", "version"])
async def test_single_block_put_failure_frees_its_block(garage: Garage, stage: str) -> None:
    """PutObject of one block writes no Uploading entry: a failure before the object entry
    unreferences the block itself, whatever step it stopped after."""
    from pygarage.api.s3.put import _unreference
    g, uuid, data = garage, b"9" * 32, b"single" * 1000
    h, block = g.block_manager.pack(data)
    await g.block_ref_table.insert(BlockRef(h, uuid))
    if stage in ("block", "version"):
        await g.block_manager.put_block(h, block)
    if stage == "version":
        await g.version_table.insert(Version(uuid, blocks={(0, 0): VersionBlock(h, len(data))},
                                             backlink=("object", b"B" * 32, "k")))
    assert g.block_manager.rc.get(h) == 1
    await _unreference(g, uuid, h)
    await drain(g)
    assert g.block_manager.rc.get(h) == 0
    ver = await g.version_table.get(uuid)
    assert ver is not None and ver.deleted
    if stage != "ref":
        assert await g.block_manager.gc_once() == 1
    assert not g.block_manager.store.has(h)
