"""Blocks between nodes (in-process cluster over the real RPC): writes reach every storage
node at quorum, reads fall back to peers and repair the local copy, the resync queue fetches
missing blocks and never deletes one another node still needs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sync_helpers import until

from pygarage.block.block import DataBlock
from pygarage.block.resync import ERR_TREE, QUEUE_TREE, ErrorRecord, split_queue_key
from pygarage.block.rpc import GET, NEED, PUT
from pygarage.db.base import Transaction
from pygarage.model.garage import Garage
from pygarage.model.s3.block_ref_table import BlockRef
from pygarage.net.peer import IncomingRequest, RpcError
from pygarage.testing.inproc import InprocCluster
from pygarage.util.clock import now_msec
from pygarage.util.errors import CorruptData, QuorumError


def _files(g: Garage, h: bytes) -> bool:
    return g.block_manager.store.has(h)


async def _ref(g: Garage, h: bytes, version: bytes, deleted: bool = False) -> None:
    """A block_ref entry written on this node only (table replication is not under test)."""
    await g.block_ref_table.data.write_entries([BlockRef(h, version, deleted)])


async def _stored_everywhere(c: InprocCluster, data: bytes) -> bytes:
    """`data` put as a block through node 1: its hash, once every node has its file."""
    bm = c.garages[0].block_manager
    h, block = bm.pack(data)
    await bm.put_block(h, block)
    await until(lambda: all(_files(g, h) for g in c.garages), within_s=10)
    return h


async def test_put_reaches_every_node_and_get_falls_back(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1, g2, g3 = c.garages
        data = os.urandom(300_000)
        h = await _stored_everywhere(c, data)
        # Read through node 2 with its own copy gone: fetched from a peer, then kept again
        # (it is referenced there).
        await _ref(g2, h, b"v" * 32)
        g2.block_manager.store.delete(h)
        assert await g2.block_manager.get_block(h) == data
        await until(lambda: _files(g2, h), within_s=10)
        # A corrupt local copy: moved aside, the data still served from a peer, repaired.
        path, _ = g2.block_manager.store.find(h)  # type: ignore[misc]
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
        assert await g2.block_manager.get_block(h) == data
        assert g2.block_manager.corruptions == 1
        assert path.with_name(path.name + ".corrupted").exists()
        await until(lambda: _files(g2, h), within_s=10)
        assert await g2.block_manager.read_local(h) == data
        # A peer's corrupt copy is skipped too (the reader verifies every copy).
        for g in (g1, g2):
            p, _ = g.block_manager.store.find(h)  # type: ignore[misc]
            p.write_bytes(b"garbage")
        assert await g3.block_manager.get_block(h) == data


async def test_put_at_quorum_with_a_node_down_then_resync(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1 = c.garages[0]
        await c.nodes[2].stop()
        data = os.urandom(200_000)
        h, block = g1.block_manager.pack(data)
        await g1.block_manager.put_block(h, block)  # quorum 2 of 3
        assert _files(c.garages[0], h) and _files(c.garages[1], h)
        # Two nodes down: the write quorum is lost.
        await c.nodes[1].stop()
        h2, block2 = g1.block_manager.pack(os.urandom(5000))
        with pytest.raises(QuorumError):
            await g1.block_manager.put_block(h2, block2)
        await c.restart(1)
        n3 = await c.restart(2)
        g3 = n3.garage
        assert not _files(g3, h)
        # Node 3 learns of a reference (as table sync would bring it): its resync queue
        # fetches the block from a peer.
        g3.block_manager.resync.retry_base_ms = 100
        await _ref(g3, h, b"v" * 32)
        assert g3.block_manager.rc.get(h) == 1
        entries = g3.db.range("block_resync_queue")
        assert any(k[8:] == h for k, _ in entries)
        # Due after the write timeout: make it due now.
        await g3.block_manager.resync.put(h, 0)
        await g3.block_manager.resync.run_due()
        assert _files(g3, h)
        assert await g3.block_manager.read_local(h) == data


async def test_gc_offloads_to_a_node_that_still_needs_the_block(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1, g2, g3 = c.garages
        for g in c.garages:
            g.block_manager.rc.delay_ms = 0
        data = os.urandom(100_000)
        h, block = g1.block_manager.pack(data)
        v = b"v" * 32
        # Node 1 holds the block with a reference that is then deleted; node 3 is
        # referenced but missing it (its write failed); node 2 has no reference.
        await g1.block_manager.write_local(h, block)
        await _ref(g1, h, v)
        await _ref(g3, h, v)
        await _ref(g1, h, v, deleted=True)
        assert g1.block_manager.rc.get(h) == 0
        assert await g1.block_manager.gc_once() == 1
        # Node 1 asked: node 3 needed it and got it before node 1 deleted its own copy.
        assert not _files(g1, h)
        assert _files(g3, h) and await g3.block_manager.read_local(h) == data
        assert not _files(g2, h)


async def test_gc_keeps_a_block_when_a_node_cannot_answer(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1 = c.garages[0]
        g1.block_manager.rc.delay_ms = 0
        g1.block_manager.resync.retry_base_ms = 60_000
        h, block = g1.block_manager.pack(os.urandom(50_000))
        await g1.block_manager.write_local(h, block)
        await _ref(g1, h, b"v" * 32)
        await _ref(g1, h, b"v" * 32, deleted=True)
        await c.nodes[2].stop()
        # Node 3 cannot say whether it needs the block: kept, error recorded, retried later.
        assert await g1.block_manager.gc_once() == 0
        assert _files(g1, h)
        rec = g1.block_manager.resync.error_of(h)
        assert rec is not None and rec.errors == 1
        assert rec.next_try_ms - rec.last_try_ms == 60_000


async def test_a_young_unreferenced_block_is_not_deleted(tmp_path: Path) -> None:
    """Block and reference writes run concurrently: a block written moments ago without
    a reference yet is kept until the GC delay has passed since its write."""
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1 = c.garages[0]
        h, block = g1.block_manager.pack(os.urandom(20_000))
        await g1.block_manager.put_block(h, block)
        await g1.block_manager.resync.put(h, 0)
        await g1.block_manager.resync.run_due()
        assert _files(g1, h)
        # Queued again for when it is old enough.
        keys = [k for k, _ in g1.db.range("block_resync_queue") if k[8:] == h]
        assert keys and int.from_bytes(keys[0][:8], "big") > 0


async def test_block_rpc_refuses_bad_requests(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1, g2, _ = c.garages
        n2 = c.nodes[1].id
        rpc = g1.rpc
        data = os.urandom(10_000)
        h, block = g1.block_manager.pack(data)
        for body in (None, {"h": b"x"}, {"h": "a" * 64}, {"h": h, "c": 1, "n": 3},
                     {"h": h, "c": False, "n": -1}, {"h": h, "c": False, "n": 1 << 40}):
            with pytest.raises(RpcError, match="invalid"):
                await rpc.call(n2, PUT, body, stream=b"abc")
        with pytest.raises(RpcError, match="invalid"):
            await rpc.call_body(n2, NEED, {"h": 5})
        # A body that does not match its hash, or its announced length, is never kept.
        with pytest.raises(RpcError, match="hash"):
            await rpc.call(n2, PUT, {"h": h, "c": block.compressed,
                                     "n": len(block.payload)}, stream=b"x" * len(block.payload))
        with pytest.raises(RpcError):
            await rpc.call(n2, PUT, {"h": h, "c": block.compressed, "n": len(block.payload)},
                           stream=block.payload + b"more")
        assert not _files(g2, h)
        with pytest.raises(RpcError, match="not found"):
            await rpc.call(n2, GET, {"h": h})
        # The real thing works.
        await rpc.call(n2, PUT, {"h": h, "c": block.compressed, "n": len(block.payload)},
                       stream=block.payload)
        assert await g2.block_manager.read_local(h) == data
        assert await g1.block_manager.client.get_from(n2, h, 0) == DataBlock(
            block.compressed, block.payload)


async def test_resync_worker_repairs_a_corrupt_copy_by_itself(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3) as c:  # with the background workers
        _, g2, _ = c.garages
        data = os.urandom(150_000)
        h = await _stored_everywhere(c, data)
        await _ref(g2, h, b"v" * 32)
        path, _ = g2.block_manager.store.find(h)  # type: ignore[misc]
        path.write_bytes(b"\0" * 100)
        with pytest.raises(CorruptData):
            await g2.block_manager.read_local(h)  # moved aside, queued for now
        await until(lambda: _files(g2, h), within_s=10)
        assert await g2.block_manager.read_local(h) == data
        workers = [i.worker for i in g2.runner.workers.values()
                   if i.worker.name.startswith("Block resync worker")]
        assert len(workers) == 8
        assert workers[0].status()["progress"] == "1 blocks resynced"
        assert workers[1].status() == {"freeform": ["This worker is currently disabled"]}


async def test_a_hung_node_neither_stalls_reads_nor_holds_memory(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1, g2, g3 = c.garages
        hung = asyncio.Event()

        async def hang(req: IncomingRequest) -> None:
            await hung.wait()
        data = os.urandom(80_000)
        h = await _stored_everywhere(c, data)
        g1.block_manager.store.delete(h)
        # The node asked first accepts the request and never answers.
        first = g1.rpc.request_order([c.nodes[1].id, c.nodes[2].id])[0]
        next(g for g in c.garages if g.system.node_id == first).rpc.register(GET, hang)
        for _ in range(3):
            async with asyncio.timeout(5):  # not the 30 s RPC timeout
                assert await g1.block_manager.get_block(h) == data
        # Writes: node 3 hangs; the quorum (1, 2) answers; the late write to node 3 is
        # kept in the background while the budget allows, dropped when it is spent.
        g3.rpc.register(PUT, hang)
        bm = g1.block_manager
        h2, block2 = bm.pack(os.urandom(30_000))
        async with asyncio.timeout(5):
            await bm.put_block(h2, block2)
        assert bm.late_write_bytes == len(block2.payload) and len(bm._background) == 1
        bm.late_write_bytes = g1.config.block_ram_buffer_max  # as if slow writes filled it
        h3, block3 = bm.pack(os.urandom(30_000))
        async with asyncio.timeout(5):
            await bm.put_block(h3, block3)
        await asyncio.sleep(0)
        assert len(bm._background) == 1  # only the earlier one
        hung.set()


async def test_a_restarted_node_fetches_its_missing_blocks_by_itself(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3) as c:  # with the background workers
        g1 = c.garages[0]
        await c.nodes[2].stop()
        blocks = [g1.block_manager.pack(os.urandom(60_000 + i)) for i in range(5)]
        for h, block in blocks:
            await g1.block_manager.put_block(h, block)
        g3 = (await c.restart(2)).garage
        # References arrive (as table sync brings them): the worker fetches the blocks.
        await g3.block_ref_table.data.write_entries([BlockRef(h, b"v" * 32)
                                                     for h, _ in blocks])
        # Checked 10 s after the reference (the default delay), then fetched.
        await until(lambda: all(_files(g3, h) for h, _ in blocks), within_s=30)
        for h, _ in blocks:
            assert await g3.block_manager.read_local(h) == await g1.block_manager.read_local(h)
        assert g3.block_manager.resync.errors_len() == 0


async def test_resync_batch_settles_checks_together_and_processes_the_rest(
        tmp_path: Path) -> None:
    """A worker claims many due entries at once: those that need nothing are settled
    together, the others get the same treatment as one by one."""
    async with InprocCluster(tmp_path, n=1, rf=1, workers=False) as c:
        g = c.garages[0]
        bm, rs = g.block_manager, g.block_manager.resync
        blocks: dict[str, bytes] = {}
        for name in ("kept", "kept_after_errors", "stray_young"):
            h, block = bm.pack(os.urandom(5000))
            await bm.put_block(h, block)
            blocks[name] = h
        blocks["gone"] = os.urandom(32)  # neither here nor referenced
        blocks["missing"] = os.urandom(32)  # referenced, and no node to fetch it from
        now = now_msec()

        def setup(tx: Transaction) -> None:
            for name in ("kept", "kept_after_errors", "missing"):
                bm.rc.incref(tx, blocks[name], now)
            tx.insert(ERR_TREE, blocks["kept_after_errors"], ErrorRecord(3, now, now).encode())
            for k, _ in tx.range(QUEUE_TREE, None, None, None):
                tx.remove(QUEUE_TREE, k)
        await g.db.write(setup)
        await rs.put_many(list(blocks.values()), 0)
        keys, _ = rs.claim_many(now_msec(), 64)
        assert len(keys) == 5 and len(rs.busy) == 5
        await rs.process_many(keys)
        assert not rs.busy and rs.done == 5
        queue = dict(split_queue_key(k)[::-1] for k, _ in g.db.range(QUEUE_TREE, None, None,
                                                                     None))
        for name in ("kept", "kept_after_errors", "gone"):
            assert blocks[name] not in queue and rs.error_of(blocks[name]) is None, name
        assert bm.store.has(blocks["kept"])
        # An unreferenced file written moments ago is kept, and looked at again later.
        assert bm.store.has(blocks["stray_young"]) and queue[blocks["stray_young"]] > now
        # Needed here and absent, with no other copy: an error, retried later.
        assert rs.error_of(blocks["missing"]) is not None and blocks["missing"] in queue
