"""Bucket counters through real Garage instances (no sockets): publication into the counter
table by the propagator (many changes of a bucket shipped as one entry), first-start
initialization, recount, and exact totals over three nodes with RF 2 whose counter entries
are exchanged by hand (as table replication does), where summing the nodes' local counts
would count everything twice."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from pygarage.api.admin.cluster import ensure_single_node_layout
from pygarage.model import counters as counters_mod
from pygarage.model.bucket_table import Bucket
from pygarage.model.counters import (
    DIRTY_TREE,
    LOCAL_TREE,
    OLD_TREE,
    CounterPropagator,
    recount,
    slot_partition,
)
from pygarage.model.garage import Garage
from pygarage.model.index_counter import CounterEntry
from pygarage.model.s3.mpu_table import MpuPart, MultipartUpload
from pygarage.model.s3.object_table import (
    COMPLETE,
    INLINE,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from pygarage.rpc.layout.version import NodeRole
from pygarage.testing.local_garage import local_garage
from pygarage.util.background import WorkerState
from pygarage.util.codec import packb
from pygarage.util.errors import QuorumError
from pygarage.util.ids import partition_hash, partition_of

BUCKET = b"B" * 32


def h(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def make(tmp: Path, **extra: Any) -> Garage:
    return local_garage(tmp, layout=False, buckets=[BUCKET], db_engine="sqlite", **extra)


def obj(key: str, size: int, ts: int = 1000) -> Object:
    meta = ObjectMeta(size, "etag", [])
    return Object(BUCKET, key, [ObjectVersion(h(key, ts), ts, COMPLETE, kind=INLINE,
                                              meta=meta, inline=b"x" * size)])


def upload(i: int, parts: int) -> tuple[Object, MultipartUpload]:
    uid = h("upload", i)
    o = Object(BUCKET, f"mpu{i}", [ObjectVersion(uid, 500, UPLOADING, multipart=True)])
    m = MultipartUpload(uid, BUCKET, f"mpu{i}", 500, parts={
        (n, 1): MpuPart(h("part", i, n), "etag", 100 * n) for n in range(1, parts + 1)})
    return o, m


@pytest.fixture
def single(tmp_path: Path) -> Garage:
    g = make(tmp_path)
    ensure_single_node_layout(g)
    return g


async def test_many_writes_of_a_bucket_coalesce_into_one_queued_entry(single: Garage) -> None:
    g = single
    for i in range(50):
        g.object_table.data.update_entry(obj(f"k{i}", 10 + i))
    table = g.counters.table
    assert len(g.db.range(DIRTY_TREE)) == 1  # 50 updates of one bucket: one entry to ship
    assert table.data.read_entry(BUCKET, b"") is None  # nothing published synchronously

    shipped: list[int] = []
    real = table.insert_many

    async def counting(entries: Any) -> None:
        batch = list(entries)
        shipped.append(len(batch))
        await real(batch)

    table.insert_many = counting  # type: ignore[method-assign]
    await CounterPropagator(g.counters).work()
    assert shipped == [1] and g.db.range(DIRTY_TREE) == []
    e = table.data.read_entry(BUCKET, b"")
    assert e is not None
    p = slot_partition(BUCKET)
    node = g.system.node_id
    assert e.values[("objects", p)][node][1] == 50
    assert e.values[("bytes", p)][node][1] == sum(10 + i for i in range(50))
    assert await g.counters.usage(BUCKET) == g.counters.get(BUCKET)


async def test_usage_reads_fresh_local_counts_before_the_queue_ships(single: Garage) -> None:
    g = single
    g.object_table.data.update_entry(obj("a", 7))
    await CounterPropagator(g.counters).work()
    g.object_table.data.update_entry(obj("b", 5))  # queued, not shipped yet
    u = await g.counters.usage(BUCKET)
    assert (u["objects"], u["bytes"]) == (2, 12)


async def test_first_start_counts_what_the_node_stores(tmp_path: Path) -> None:
    g = make(tmp_path)
    ensure_single_node_layout(g)
    for i in range(3):
        g.object_table.data.update_entry(obj(f"k{i}", 100))
    o, m = upload(1, 2)
    g.object_table.data.update_entry(o)
    g.mpu_table.data.update_entry(m)
    expected = g.counters.get(BUCKET)
    # As a node of an earlier release left it: node-local counts in the old tree only, no
    # published counters.
    for k, _ in g.db.range(LOCAL_TREE):
        g.db.remove(LOCAL_TREE, k)
    for k, _ in g.db.range(DIRTY_TREE):
        g.db.remove(DIRTY_TREE, k)
    g.db.insert(OLD_TREE, BUCKET, packb({"objects": 3}))
    await g.shutdown()

    g = make(tmp_path)
    assert g.counters.get(BUCKET) == expected
    assert expected == {"objects": 3, "bytes": 300, "unfinished_uploads": 1, "mpu_parts": 2,
                        "mpu_bytes": 300}
    assert len(g.db.range(DIRTY_TREE)) == 1  # to publish for the other replicas
    assert g.db.range(OLD_TREE) == []
    await CounterPropagator(g.counters).work()
    assert await g.counters.usage(BUCKET) == expected
    await g.shutdown()
    # Once initialized, a restart does not recount.
    g = make(tmp_path)
    assert g.db.range(DIRTY_TREE) == []
    await g.shutdown()


async def test_recount_corrects_wrong_local_counts(single: Garage) -> None:
    g = single
    for i in range(4):
        g.object_table.data.update_entry(obj(f"k{i}", 10))
    key = BUCKET + bytes([slot_partition(BUCKET)])
    damaged = {"objects": (1, 41), "bytes": (1, 40)}
    g.db.insert(LOCAL_TREE, key, counters_mod._encode_row(damaged))
    assert g.counters.get(BUCKET)["objects"] == 41
    assert await recount(g) == 1
    assert g.counters.get(BUCKET)["objects"] == 4
    await CounterPropagator(g.counters).work()
    assert (await g.counters.usage(BUCKET))["objects"] == 4
    assert await recount(g) == 0


# -- three nodes, RF 2


def make_cluster(tmp: Path, mode: str) -> list[Garage]:
    gs = [make(tmp / f"n{i}", replication_factor=2, consistency_mode=mode) for i in range(3)]
    for i, g in enumerate(gs):
        stage(gs, g, NodeRole(f"dc{i + 1}", 1 << 30, ()))
    apply(gs)
    return gs


def stage(gs: list[Garage], g: Garage, role: NodeRole | None) -> None:
    gs[0].system.layout.stage_role(g.system.node_id, role, g.system.clock)


def apply(gs: list[Garage]) -> None:
    h0 = gs[0].system.layout
    h0.apply(h0.current.version + 1, gs[0].system.clock)
    gs[0].system.save_layout()
    for g in gs[1:]:
        g.system.layout = h0.copy()
        g.system.save_layout()


@pytest.fixture
def cluster(tmp_path: Path) -> list[Garage]:
    return make_cluster(tmp_path, "dangerous")


def owners(gs: list[Garage], pk: bytes) -> list[Garage]:
    nodes = gs[0].system.current_layout.nodes_of(partition_of(partition_hash(pk)))
    return [g for g in gs if g.system.node_id in nodes]


def exchange_counters(gs: list[Garage]) -> None:
    """What the propagator and the replicated table do: each node's entry for every dirty
    bucket goes to the owners of the bucket's partition."""
    for g in gs:
        for bucket, _ in g.db.range(DIRTY_TREE):
            raw = g.counters.local_entry(bucket).encode()
            for other in owners(gs, bucket):
                other.counters.table.data.update_entry(CounterEntry.decode(raw))


async def test_cluster_totals_are_exact_not_rf_times(cluster: list[Garage]) -> None:
    gs = cluster
    bucket_owners = owners(gs, BUCKET)
    assert len(bucket_owners) == 2
    sizes = [10 * (i + 1) for i in range(20)]
    for i, size in enumerate(sizes):
        for g in bucket_owners:
            g.object_table.data.update_entry(obj(f"k{i}", size))
    parts = 0
    for i in range(12):  # uploads are spread over the partitions of their ids
        o, m = upload(i, i % 3 + 1)
        parts += len(m.parts)
        for g in bucket_owners:
            g.object_table.data.update_entry(o)
        for g in owners(gs, m.upload_id):
            g.mpu_table.data.update_entry(m)
    mpu_bytes = sum(100 * n for i in range(12) for n in range(1, i % 3 + 2))
    expected = {"objects": 20, "bytes": sum(sizes), "unfinished_uploads": 12,
                "mpu_parts": parts, "mpu_bytes": mpu_bytes}
    # Summing what every node counts locally counts each object twice.
    assert sum(g.counters.get(BUCKET)["objects"] for g in gs) == 40
    exchange_counters(gs)
    for g in bucket_owners:
        assert await g.counters.usage(BUCKET) == expected

    # A replica that missed writes (down meanwhile) does not lower the total: the max wins.
    lagging, fresh = bucket_owners
    for i in range(20, 25):
        fresh.object_table.data.update_entry(obj(f"k{i}", 1))
    exchange_counters(gs)
    assert (await lagging.counters.usage(BUCKET))["objects"] == 25
    assert (await fresh.counters.usage(BUCKET))["objects"] == 25


async def test_a_node_that_left_the_layout_no_longer_counts(cluster: list[Garage]) -> None:
    gs = cluster
    a, b = owners(gs, BUCKET)
    for g in (a, b):
        g.object_table.data.update_entry(obj("k", 10))
    exchange_counters(gs)
    # A node outside the layout once published a large count for the bucket.
    ghost = CounterEntry(BUCKET, {("objects", slot_partition(BUCKET)): {"ab" * 32: (1, 99)}})
    a.counters.table.data.update_entry(ghost)
    assert (await a.counters.usage(BUCKET))["objects"] == 1


async def test_a_node_removed_from_the_layout_counts_until_its_version_retires(
        tmp_path: Path) -> None:
    gs = make_cluster(tmp_path, "consistent")
    a, b = owners(gs, BUCKET)
    for i in range(3):  # a holds a deletion it missed: its count is too high
        a.object_table.data.update_entry(obj(f"k{i}", 10))
    for i in range(2):
        b.object_table.data.update_entry(obj(f"k{i}", 10))
    for g in (a, b):
        for other in gs:
            other.counters.table.data.update_entry(g.counters.local_entry(BUCKET))
    assert (await b.counters.usage(BUCKET))["objects"] == 3  # max over the replicas

    stage(gs, a, None)  # a leaves; while data moves, the old version (with a) is live
    apply(gs)
    assert len(b.system.layout.versions) == 2
    assert a.system.node_id not in b.system.current_layout.node_id_vec
    assert (await b.counters.usage(BUCKET))["objects"] == 3
    b.system.layout.keep_current_version_only()  # the new version synced: the old retires
    assert (await b.counters.usage(BUCKET))["objects"] == 2


def test_local_rows_are_per_bucket_and_partition(single: Garage) -> None:
    g = single
    g.object_table.data.update_entry(obj("k", 10))
    o, m = upload(1, 2)
    g.mpu_table.data.update_entry(m)
    rows = {k: counters_mod._decode_row(v) for k, v in g.db.range(LOCAL_TREE) if len(k) > 4}
    p, pm = slot_partition(BUCKET), slot_partition(m.upload_id)
    assert p != pm
    assert {k: sorted(r) for k, r in rows.items()} == {
        BUCKET + bytes([p]): ["bytes", "objects"], BUCKET + bytes([pm]): ["mpu_bytes", "mpu_parts"]}


async def test_unreachable_replicas_hold_back_only_their_partition(single: Garage) -> None:
    g = single
    other = b"C" * 32
    assert slot_partition(other) != slot_partition(BUCKET)
    g.bucket_table.data.update_entry(Bucket(other))
    for b in (BUCKET, other):
        o = obj("k", 3)
        o.bucket_id = b
        g.object_table.data.update_entry(o)
    table = g.counters.table
    real = table.insert_many
    down = {BUCKET}

    async def flaky(entries: Any) -> None:
        batch = list(entries)
        if any(e.bucket_id in down for e in batch):
            raise QuorumError("replicas unreachable")
        await real(batch)

    table.insert_many = flaky  # type: ignore[method-assign]
    prop = CounterPropagator(g.counters, batch=1)
    with pytest.raises(QuorumError):
        await prop.work()  # BUCKET first (lowest id): fails, and the next round skips it
    assert await prop.work() == WorkerState.BUSY
    assert [k for k, _ in g.db.range(DIRTY_TREE)] == [BUCKET]
    assert table.data.read_entry(other, b"") is not None

    prop = CounterPropagator(g.counters)  # a batch of both: the reachable one still ships
    g.object_table.data.update_entry(obj("k2", 3))
    o = obj("k2", 3)
    o.bucket_id = other
    g.object_table.data.update_entry(o)
    with pytest.raises(QuorumError):
        await prop.work()
    assert [k for k, _ in g.db.range(DIRTY_TREE)] == [BUCKET]
    e = table.data.read_entry(other, b"")
    assert e is not None and e.totals(lambda p: [g.system.node_id])["objects"] == 2
    down.clear()
    await prop.work()
    assert g.db.range(DIRTY_TREE) == []
    assert (await g.counters.usage(BUCKET))["objects"] == 2


def test_rows_of_a_bucket_id_at_the_end_of_the_key_space(single: Garage) -> None:
    g, last = single, b"\xff" * 32
    g.bucket_table.data.update_entry(Bucket(last))
    o = obj("k", 9)
    o.bucket_id = last
    g.object_table.data.update_entry(o)
    assert g.counters.get(last)["bytes"] == 9
    assert counters_mod.prefix_end(b"a\xff") == b"b"
