"""The admin API for blocks: resync errors with their backoff (ListBlockErrors), retry now
(RetryBlockResync), block info by hash prefix (GetBlockInfo), and PurgeBlocks deleting the
objects that use a block; `garage repair blocks` queueing what this node holds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pygarage.api.admin.errors import AdminError
from pygarage.api.admin.router import admin_call
from pygarage.block.resync import repair_blocks
from pygarage.model.garage import Garage
from pygarage.model.s3.block_ref_table import BlockRef
from pygarage.model.s3.object_table import (
    COMPLETE,
    FIRST_BLOCK,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from pygarage.model.s3.version_table import Version, VersionBlock
from pygarage.testing.inproc import InprocCluster
from pygarage.testing.local_garage import drain, running_local_garage


def _mine(res: dict[str, Any], g: Garage) -> Any:
    assert res["error"] == {}, res
    return res["success"][g.system.node_id]


async def test_resync_errors_backoff_and_retry_through_admin(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1 = c.garages[0]
        bm = g1.block_manager
        bm.rc.delay_ms = 0
        data = os.urandom(40_000)
        h, block = bm.pack(data)
        await bm.write_local(h, block)
        await g1.block_ref_table.data.write_entries([BlockRef(h, b"v" * 32)])
        await g1.block_ref_table.data.write_entries([BlockRef(h, b"v" * 32, True)])
        await c.nodes[2].stop()  # cannot tell whether it needs the block: error, kept
        assert await bm.gc_once() == 0
        errs = _mine(await admin_call(g1, "ListBlockErrors", {"node": "self"}, None), g1)
        assert len(errs) == 1 and 59 <= errs[0].pop("nextTryInSecs") <= 60
        assert errs == [{"blockHash": h.hex(), "refcount": 0, "errorCount": 1,
                         "lastTrySecsAgo": 0}]
        # Retried now (not in a minute): fails again, backoff doubles.
        res = await admin_call(g1, "RetryBlockResync", {"node": "self"},
                               {"blockHashes": [h.hex()]})
        assert _mine(res, g1) == {"count": 1}
        assert await bm.gc_once() == 0
        err = _mine(await admin_call(g1, "ListBlockErrors", {"node": "self"}, None), g1)[0]
        assert err["errorCount"] == 2 and 118 <= err["nextTryInSecs"] <= 120
        res = await admin_call(g1, "RetryBlockResync", {"node": "self"},
                               {"blockHashes": ["00" * 32]})
        assert "errored" in res["error"][g1.system.node_id]
        # Info by prefix: refcount 0, the deleted reference, present here.
        info = _mine(await admin_call(g1, "GetBlockInfo", {"node": "self"},
                                      {"blockHash": h.hex()[:10]}), g1)
        assert info["blockHash"] == h.hex() and info["refcount"] == 0
        assert info["present"] is True and info["resyncErrors"] == 2
        ids = [nd.id for nd in c.nodes]
        assert info["presentOn"] == {ids[0]: True, ids[1]: False, ids[2]: None}
        assert [(v["versionId"], v["refDeleted"]) for v in info["versions"]] == [
            ((b"v" * 32).hex(), True)]
        # Node 3 back: retry --all; it does not need the block, so it is deleted; no error.
        await c.restart(2)
        res = await admin_call(g1, "RetryBlockResync", {"node": "self"}, {"all": True})
        assert _mine(res, g1) == {"count": 1}
        assert await bm.gc_once() == 1
        assert _mine(await admin_call(g1, "ListBlockErrors", {"node": "self"}, None), g1) == []
        assert not bm.store.has(h)


async def test_purge_deletes_the_objects_using_a_block(tmp_path: Path) -> None:
    bucket, uuid = b"B" * 32, b"1" * 32
    async with running_local_garage(tmp_path, buckets=[bucket]) as g:
        g.block_manager.rc.delay_ms = 0
        data = os.urandom(10_000)
        h, block = g.block_manager.pack(data)
        await g.block_ref_table.insert(BlockRef(h, uuid))
        await g.block_manager.put_block(h, block)
        await g.version_table.insert(Version(uuid, blocks={(0, 0): VersionBlock(h, len(data))},
                                             backlink=("object", bucket, "k")))
        meta = ObjectMeta(len(data), "etag", [])
        await g.object_table.insert(Object(bucket, "k", [ObjectVersion(
            uuid, 1000, COMPLETE, kind=FIRST_BLOCK, meta=meta, first_block=h)]))
        info = _mine(await admin_call(g, "GetBlockInfo", {"node": "self"},
                                      {"blockHash": h.hex()}), g)
        assert info["refcount"] == 1
        assert info["versions"][0]["backlink"] == {"object": {"bucketId": bucket.hex(),
                                                              "key": "k"}}
        # By prefix (odd length, upper case), with another block sorting before it (after
        # it when h's first hex digit is 0): its first hex digit always differs from h's.
        low = bytes(32) if h[0] >= 0x10 else b"\xff" * 32
        await g.block_ref_table.data.write_entries([BlockRef(low, b"w" * 32)])
        for prefix in (h.hex()[:1], h.hex()[:3], h.hex().upper()):
            res = await admin_call(g, "GetBlockInfo", {"node": "self"}, {"blockHash": prefix})
            assert _mine(res, g)["blockHash"] == h.hex()
        other = next(d * 5 for d in "23456789" if h.hex()[0] != d)  # matches no block
        res = await admin_call(g, "GetBlockInfo", {"node": "self"}, {"blockHash": other})
        assert "no block found" in res["error"][g.system.node_id]
        with pytest.raises(AdminError):  # the schema wants a list
            await admin_call(g, "PurgeBlocks", {"node": "self"}, {"x": 1})
        for bad in (["zz"], [h.hex()[:10]]):
            res = await admin_call(g, "PurgeBlocks", {"node": "self"}, bad)
            assert "64 hex" in res["error"][g.system.node_id]
        res = _mine(await admin_call(g, "PurgeBlocks", {"node": "self"}, [h.hex()]), g)
        assert res == {"blocksPurged": 1, "objectsDeleted": 1, "uploadsDeleted": 0,
                       "versionsDeleted": 1}
        await drain(g)
        obj = await g.object_table.get(bucket, b"k")
        assert obj is None or obj.current() is None
        assert g.block_manager.rc.get(h) == 0
        assert g.block_manager.store.has(h)  # the GC has not run
        # repair blocks: the block (present, unreferenced) is queued; after the delay, gone.
        assert await repair_blocks(g) >= 1
        os.utime(g.block_manager.store.find(h)[0], (0, 0))  # type: ignore[index]
        await g.block_manager.gc_once()
        assert not g.block_manager.store.has(h)
