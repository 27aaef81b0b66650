"""Table writes and bucket creation/deletion run in the db's writer thread: a slow
transaction (a slow fsync, with metadata_fsync = true) does not stall the event loop, and
concurrent inserts of several requests share one commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pygarage.db.base import Transaction
from pygarage.model.bucket_table import Bucket
from pygarage.model.garage import Garage
from pygarage.model.helpers.bucket_lifecycle import create_bucket, delete_bucket
from pygarage.model.s3.object_table import COMPLETE, Object, ObjectMeta, ObjectVersion
from pygarage.testing.local_garage import local_garage
from pygarage.testing.loop_ticks import ticks_during

BUCKET = b"B" * 32


@pytest.fixture(params=["sqlite", "lmdb"])
def garage(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Garage]:
    g = local_garage(tmp_path, buckets=[BUCKET], db_engine=request.param, metadata_fsync=True)
    yield g
    g.db.close()


def _obj(i: int) -> Object:
    v = ObjectVersion(bytes([i]) * 32, 1000 + i, COMPLETE, meta=ObjectMeta(0, "etag", []))
    return Object(BUCKET, f"k{i}", [v])


def _slow(g: Garage) -> None:
    """Every object write takes 0.4 s inside its transaction, as a slow disk would."""
    check = g.object_table.data.write_check
    assert check is not None

    def slow_check(tx: Transaction, entry: Object) -> None:
        threading.Event().wait(0.4)
        check(tx, entry)
    g.object_table.data.write_check = slow_check


async def test_a_slow_table_write_does_not_stall_the_loop(garage: Garage) -> None:
    _slow(garage)
    assert await ticks_during(garage.object_table.insert(_obj(1))) >= 15
    got = await garage.object_table.get(BUCKET, b"k1")
    assert got is not None and got.current() is not None


async def test_bucket_create_and_delete_run_off_the_loop(garage: Garage) -> None:
    real = garage.bucket_table.data.update_entry_tx

    def slow_update(tx: Transaction, entry: Bucket) -> Bucket:
        threading.Event().wait(0.2)
        return real(tx, entry)
    garage.bucket_table.data.update_entry_tx = slow_update  # type: ignore[method-assign]
    box: list[Bucket] = []

    async def create() -> None:
        box.append(await create_bucket(garage, "offloop"))
    assert await ticks_during(create()) >= 8
    assert await ticks_during(delete_bucket(garage, box[0].id)) >= 8
    b = await garage.bucket_table.get(box[0].id)
    assert b is not None and b.deleted


async def test_concurrent_inserts_share_commits(garage: Garage) -> None:
    await garage.object_table.insert(_obj(0))  # the bucket is now known live
    before = garage.db.commits
    await asyncio.gather(*(garage.object_table.insert(_obj(i)) for i in range(1, 33)))
    commits = garage.db.commits - before
    assert 1 <= commits < 32 // 2  # one commit per request before the writer thread
    listed = await garage.object_table.get_range(BUCKET, limit=1000)
    assert len(listed) == 33


async def test_a_multi_entry_insert_is_one_transaction(garage: Garage) -> None:
    from pygarage.model.s3.block_ref_table import BlockRef
    before = garage.db.commits
    await garage.block_ref_table.insert_many(BlockRef(bytes([i]) * 32, b"v" * 32)
                                             for i in range(20))
    assert garage.db.commits - before == 1
    assert garage.block_manager.rc.count() == 20
