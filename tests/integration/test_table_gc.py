"""Tombstone GC between in-process nodes over the real RPC: tombstones are dropped on every
replica only once all of them hold the tombstone (a node down makes GC wait), so an older
value on a lagging replica can never come back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import contents, same_everywhere, until, write_local

from pygarage.model.garage import Garage
from pygarage.model.s3.object_table import (
    COMPLETE,
    DELETE_MARKER,
    INLINE,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from pygarage.model.s3.version_table import Version
from pygarage.net.peer import RpcError
from pygarage.table.data import tree_key
from pygarage.table.sync import repair_tables
from pygarage.testing.inproc import InprocCluster


def _gc(g: Garage, table: str) -> Any:
    return next(gc for gc in g.table_gcs if gc.table.name == table)


def _fast(c: InprocCluster, delay_ms: int) -> None:
    for g in c.garages:
        for gc in g.table_gcs:
            gc.delay_ms = delay_ms
            gc.retry_s = 0.3
            gc.wake()


async def test_gc_waits_for_every_replica_then_deletes_everywhere(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3) as c:
        _fast(c, 500)
        # The GC leader of a partition is its first storage node (sorted ids): with 3
        # nodes and rf 3, the same node for every partition.
        lead_i = min(range(3), key=lambda i: c.nodes[i].id)
        other_i = (lead_i + 1) % 3
        lead = c.garages[lead_i]
        uuids = [os.urandom(16) for _ in range(50)]
        keep = [os.urandom(16) for _ in range(5)]
        # Live entries everywhere; then the other node goes down and the leader alone
        # learns of the deletions (tombstones), plus live entries that must stay.
        for g in c.garages:
            await write_local(g, g.version_table, [Version(u) for u in uuids + keep])
        await c.nodes[other_i].stop()
        await write_local(lead, lead.version_table, [Version(u, deleted=True) for u in uuids])
        gc = _gc(lead, "version")
        assert gc.todo_len() == 50
        # Due after 0.5 s, but a storage node is down: nothing is deleted anywhere.
        await until(lambda: gc.last_error is not None, within_s=40, what="GC attempt")
        assert len(contents(lead, "version")) == 55
        assert gc.collected == 0 and gc.todo_len() == 50
        # Back up: the tombstones reach it first, then go everywhere; live ones stay.
        await c.restart(other_i)
        _fast(c, 500)

        def gone() -> bool:
            return all(set(contents(g, "version")) == {tree_key(u, b"") for u in keep}
                       for g in c.garages)
        await until(gone, within_s=60, what="GC")
        # The counter moves once the GC's own delete has committed, just after the store
        # shows it: a few scheduler turns later.
        await until(lambda: gc.collected == 50, within_s=10, what="GC count")
        assert gc.todo_len() == 0
        # A full sync brings nothing back (the lagging node's old live values were
        # replaced by the tombstones before anything was deleted).
        before = {id(s): s.passes for g in c.garages for s in g.table_syncers}
        for g in c.garages:
            await repair_tables(g)
        await until(lambda: all(s.passes > before[id(s)] for g in c.garages
                                for s in g.table_syncers), within_s=60, what="sync")
        assert gone() and same_everywhere(c, "version")
        for g in c.garages:
            assert g.version_table.data.merkle.matches_entries() == []


async def test_gc_keeps_a_tombstone_overwritten_meanwhile(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=1, rf=1) as c:
        g = c.garages[0]
        _fast(c, 60_000)
        u = os.urandom(16)
        await write_local(g, g.version_table, [Version(u, deleted=True)])
        gc = _gc(g, "version")
        assert gc.todo_len() == 1
        # Made live again? A version cannot be undeleted; a block_ref neither. Use the
        # object table: a delete marker, then a newer PUT of the same key.
        b = b"B" * 32
        marker = ObjectVersion(b"1" * 16, 1000, COMPLETE, kind=DELETE_MARKER)
        await write_local(g, g.object_table, [Object(b, "k", [marker])])
        put = ObjectVersion(b"2" * 16, 2000, COMPLETE, kind=INLINE,
                            meta=ObjectMeta(1, "e", []), inline=b"x")
        await write_local(g, g.object_table, [Object(b, "k", [put])])
        ogc = _gc(g, "object")
        assert ogc.todo_len() == 1
        for x in (gc, ogc):
            x.delay_ms = 0
            x.wake()
        await until(lambda: gc.todo_len() == 0 and ogc.todo_len() == 0, what="GC")
        assert g.version_table.data.count() == 0
        obj = g.object_table.data.read_entry(b, b"k")
        assert obj is not None and obj.current() is not None  # the PUT won and stays
        assert ogc.collected == 0


async def test_gc_delete_endpoint_refuses_malformed_requests(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=2, rf=2, workers=False) as c:
        h = c.garages[0].rpc
        node = c.nodes[1].id
        for body in ("x", [[b"k"]], [[b"k", b"short"]], [[b"", b"h" * 32]], [[1, b"h" * 32]],
                     [[b"k", b"h" * 32]] * 2000, [[b"k" * 5000, b"h" * 32]]):
            with pytest.raises(RpcError):
                await h.call_body(node, "table/version/gc/delete", body)
        # A hash that does not match deletes nothing.
        g2 = c.garages[1]
        v = Version(os.urandom(16), deleted=True)
        await write_local(g2, g2.version_table, [v])
        await h.call_body(node, "table/version/gc/delete", [[tree_key(v.uuid, b""), b"h" * 32]])
        assert g2.version_table.data.count() == 1


async def test_a_late_copy_of_an_older_value_does_not_come_back(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=1, rf=1) as c:
        g = c.garages[0]
        _fast(c, 0)
        b = b"B" * 32
        old = ObjectVersion(b"1" * 16, 1000, COMPLETE, kind=INLINE,
                            meta=ObjectMeta(1, "e", []), inline=b"x")
        marker = ObjectVersion(b"2" * 16, 2000, COMPLETE, kind=DELETE_MARKER)
        u = os.urandom(16)
        await write_local(g, g.object_table, [Object(b, "k", [old])])
        await write_local(g, g.version_table, [Version(u)])
        await write_local(g, g.object_table, [Object(b, "k", [marker])])
        await write_local(g, g.version_table, [Version(u, deleted=True)])
        await until(lambda: g.object_table.data.count() == 0
                    and g.version_table.data.count() == 0, what="GC")
        # Copies of the values from before the deletions, arriving late (a sync push read
        # before the tombstones reached its sender): dropped.
        await write_local(g, g.object_table, [Object(b, "k", [old])])
        await write_local(g, g.version_table, [Version(u)])
        assert g.object_table.data.count() == 0 and g.version_table.data.count() == 0
        # A newer write of the key is a new value: kept.
        new = ObjectVersion(b"3" * 16, 3000, COMPLETE, kind=INLINE,
                            meta=ObjectMeta(1, "e", []), inline=b"y")
        await write_local(g, g.object_table, [Object(b, "k", [new])])
        obj = g.object_table.data.read_entry(b, b"k")
        assert obj is not None and obj.current() is not None
        assert obj.current().inline == b"y"  # type: ignore[union-attr]


async def test_a_tombstone_is_collected_by_the_leader_wherever_it_was_written(
        tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=2, rf=2) as c:
        _fast(c, 300)
        lead_i = min(range(2), key=lambda i: c.nodes[i].id)
        other = c.garages[1 - lead_i]
        lead = c.garages[lead_i]
        u = os.urandom(16)
        # Written on the other node only: it records it but leaves it to the leader,
        # which gets it from sync and collects it on both.
        await write_local(other, other.version_table, [Version(u, deleted=True)])
        ogc, lgc = _gc(other, "version"), _gc(lead, "version")
        assert ogc.todo_len() == 1 and lgc.todo_len() == 0
        await until(lambda: ogc.todo_len() == 1 and other.version_table.data.count() == 1
                    and ogc._wait_s > 0, what="requeued")
        await repair_tables(other)
        await until(lambda: lead.version_table.data.count() == 0
                    and other.version_table.data.count() == 0, what="GC by the leader")
        await until(lambda: lgc.collected == 1, within_s=10, what="GC count")  # as above
        assert ogc.collected == 0
        await until(lambda: ogc.todo_len() == 0 and lgc.todo_len() == 0, what="todo")
