"""An entry removed from a node without being deleted (tombstone GC, offload to the new
owners of its partition) does not cascade: the object's versions did not end."""

from __future__ import annotations

from pathlib import Path

from pygarage.model.s3.object_table import COMPLETE, FIRST_BLOCK, Object, ObjectMeta, ObjectVersion
from pygarage.table.data import tree_key
from pygarage.testing.local_garage import drain, running_local_garage


async def test_removing_a_live_object_entry_queues_no_version_deletion(tmp_path: Path) -> None:
    bucket = b"B" * 32
    async with running_local_garage(tmp_path, buckets=[bucket]) as g:
        v = ObjectVersion(b"u" * 16, 1000, COMPLETE, kind=FIRST_BLOCK,
                          meta=ObjectMeta(5, "e", []), first_block=b"h" * 32)
        await g.object_table.insert(Object(bucket, "k", [v]))
        await drain(g)
        data = g.object_table.data
        raw = data.db.get(data.store, tree_key(bucket, b"k"))
        assert raw is not None
        assert await data.db.write(lambda tx: data.remove_entry_tx(tx, bucket, b"k", raw))
        assert g.version_table.data.queued(10) == []
        assert g.mpu_table.data.queued(10) == []
        assert data.read_entry(bucket, b"k") is None
