"""What a race can leave behind, freed: an object write refused because its bucket is gone,
and blocks listed in a version deleted while they were being written (an upload aborted, by
DeleteBucket or AbortMultipartUpload, during UploadPart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pygarage.model.bucket_table import Bucket
from pygarage.model.garage import Garage
from pygarage.model.helpers.errors import NoSuchBucketErr
from pygarage.model.s3.block_ref_table import BlockRef
from pygarage.model.s3.object_table import (
    ABORTED,
    COMPLETE,
    FIRST_BLOCK,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from pygarage.model.s3.version_table import Version, VersionBlock
from pygarage.testing.local_garage import drain, local_garage

BUCKET = b"B" * 32


@pytest.fixture(params=["sqlite", "lmdb"])
def garage(tmp_path: Path, request: pytest.FixtureRequest) -> Garage:
    return local_garage(tmp_path, buckets=[BUCKET], db_engine=request.param)


async def _stored_block(g: Garage, uuid: bytes, data: bytes) -> bytes:
    h, block = g.block_manager.pack(data)
    await g.block_ref_table.insert(BlockRef(h, uuid))
    await g.block_manager.put_block(h, block)
    return h


def _complete(uuid: bytes, h: bytes, size: int) -> ObjectVersion:
    return ObjectVersion(uuid, 1000, COMPLETE, kind=FIRST_BLOCK,
                         meta=ObjectMeta(size, "etag", []), first_block=h)


async def test_object_write_into_deleted_bucket_refused_and_freed(garage: Garage) -> None:
    g, uuid, data = garage, b"1" * 32, b"late" * 1000
    h = await _stored_block(g, uuid, data)
    await g.version_table.insert(Version(uuid, blocks={(0, 0): VersionBlock(h, len(data))}))
    deleted = Bucket(BUCKET)
    deleted.deleted = True
    g.bucket_table.data.update_entry(deleted)
    with pytest.raises(NoSuchBucketErr):
        await g.object_table.insert(Object(BUCKET, "k", [_complete(uuid, h, len(data))]))
    with pytest.raises(NoSuchBucketErr):  # an unknown bucket too
        await g.object_table.insert(Object(b"X" * 32, "k", [ObjectVersion(
            b"2" * 32, 1000, UPLOADING)]))
    # Aborts are always accepted.
    await g.object_table.insert(Object(BUCKET, "k", [ObjectVersion(b"3" * 32, 1, ABORTED)]))
    assert await g.object_table.get(BUCKET, b"k") is not None
    await drain(g)
    assert g.block_manager.rc.get(h) == 0
    ver = await g.version_table.get(uuid)
    assert ver is not None and ver.deleted


async def test_blocks_listed_in_deleted_version_are_freed(garage: Garage) -> None:
    g, uuid = garage, b"4" * 32
    h1 = await _stored_block(g, uuid, b"first" * 1000)
    await g.version_table.insert(Version(uuid, blocks={(1, 0): VersionBlock(h1, 5000)}))
    h2 = await _stored_block(g, uuid, b"second" * 1000)  # written while the upload is aborted
    await g.version_table.insert(Version(uuid, deleted=True))
    await g.version_table.insert(Version(uuid, blocks={(1, 5000): VersionBlock(h2, 6000)}))
    await drain(g)
    assert g.block_manager.rc.get(h1) == 0
    assert g.block_manager.rc.get(h2) == 0


def test_raw_is_deleted() -> None:
    v = Version(b"5" * 32, blocks={(0, i): VersionBlock(b"h" * 32, 1) for i in range(50)})
    assert not Version.raw_is_deleted(v.encode())
    v.merge(Version(v.uuid, deleted=True))
    assert Version.raw_is_deleted(v.encode())
