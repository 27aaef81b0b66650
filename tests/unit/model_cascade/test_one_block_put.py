"""A single-block PUT on a node owning every entry: block reference, version and object in
one commit, each through its table's merge, hooks and write check (Merkle trees equal to a
rebuild); a refused object (bucket deleted) still frees the block. Small blocks are written
on the event loop unless data_fsync asks for an fsync."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pygarage.model.bucket_table import Bucket
from pygarage.model.garage import Garage
from pygarage.model.helpers.errors import NoSuchBucketErr
from pygarage.model.s3.block_ref_table import BlockRef
from pygarage.model.s3.local_put import owns_all, write_one_block_put
from pygarage.model.s3.object_table import COMPLETE, FIRST_BLOCK, Object, ObjectMeta, ObjectVersion
from pygarage.model.s3.version_table import Version, VersionBlock
from pygarage.table.data import tree_key
from pygarage.testing.local_garage import local_garage

BUCKET = b"B" * 32


def _garage(tmp_path: Path, engine: str, data_fsync: bool = False) -> Garage:
    return local_garage(tmp_path, buckets=[BUCKET], db_engine=engine, data_fsync=data_fsync)


@pytest.fixture(params=["sqlite", "lmdb"])
def garage(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Garage]:
    g = _garage(tmp_path, request.param)
    yield g
    g.db.close()


def _entries(g: Garage, i: int) -> tuple[BlockRef, Version, Object]:
    vid = bytes([i]) * 32
    h, _block = g.block_manager.pack(os.urandom(4096))
    meta = ObjectMeta(4096, "etag", [])
    obj = Object(BUCKET, f"k{i}", [ObjectVersion(vid, 1000 + i, COMPLETE, kind=FIRST_BLOCK,
                                                 meta=meta, first_block=h)])
    version = Version(vid, blocks={(0, 0): VersionBlock(h, 4096)},
                      backlink=("object", BUCKET, f"k{i}"))
    return BlockRef(h, vid), version, obj


def _merkle_consistent(g: Garage) -> None:
    for t in (g.block_ref_table, g.version_table, g.object_table):
        assert t.data.merkle.matches_entries() == [], t.name


def test_three_entries_in_one_commit(garage: Garage) -> None:
    g = garage
    ref, version, obj = _entries(g, 1)
    assert owns_all(g, ref, version, obj)
    before = g.db.commits
    asyncio.run(write_one_block_put(g, ref, version, obj))
    assert g.db.commits - before == 1
    assert g.object_table.data.read_entry(BUCKET, b"k1") is not None
    assert g.version_table.data.read_entry(version.uuid, b"") is not None
    assert g.block_ref_table.data.read_entry(ref.block, version.uuid) is not None
    _merkle_consistent(g)


def test_refused_object_still_frees_the_block(garage: Garage) -> None:
    """Bucket deleted: NoSuchBucket, the reference and version stay (as the separate writes
    would leave them) and the version's deletion is queued, which frees the block."""
    g = garage
    g.bucket_table.data.update_entry(Bucket(BUCKET, deleted=True))
    ref, version, obj = _entries(g, 2)
    with pytest.raises(NoSuchBucketErr):
        asyncio.run(write_one_block_put(g, ref, version, obj))
    assert g.object_table.data.read_entry(BUCKET, b"k2") is None
    assert g.block_ref_table.data.read_entry(ref.block, version.uuid) is not None
    queued = dict(g.version_table.data.queued(100))
    raw = queued.get(tree_key(version.uuid, b""))
    assert raw is not None and Version.raw_is_deleted(raw)
    _merkle_consistent(g)


@pytest.mark.parametrize("data_fsync", [False, True])
def test_block_files_are_written_off_the_event_loop(tmp_path: Path, data_fsync: bool) -> None:
    """Even a small block: a stalled disk must never hold up every request of the node."""
    g = _garage(tmp_path, "lmdb", data_fsync)
    try:
        threads: list[int] = []
        write = g.block_manager.store.write

        def spy(*a: object, **kw: object) -> None:
            threads.append(threading.get_ident())
            write(*a, **kw)  # type: ignore[arg-type]
        g.block_manager.store.write = spy  # type: ignore[method-assign]
        h, block = g.block_manager.pack(os.urandom(4096))
        asyncio.run(g.block_manager.write_local(h, block))
        assert g.block_manager.store.find(h) is not None
        assert len(threads) == 1 and threads[0] != threading.get_ident()
    finally:
        g.db.close()
