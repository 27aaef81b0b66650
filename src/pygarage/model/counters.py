"""Per-bucket counters (objects, bytes, unfinished uploads, parts), exact in a cluster.

Local part: each node counts the entries it stores, in the same transaction as the entry
write (the object and mpu table hooks call on_object / on_mpu), in its local tree, one row
per (bucket, partition of the counted entries) holding (timestamp, value) per counter name,
and marks the bucket dirty. Global part: the CounterPropagator worker publishes each dirty
bucket's rows into the replicated counter table (index_counter.py) after the commit, so a
PUT never waits for it, and many changes of one bucket between two rounds ship as one
entry. Reading a bucket's counts is a quorum read
of that table, with this node's fresher local rows merged in, then the max over the
replicas (see CounterEntry.totals). With one node the result is exactly the local count.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import struct
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..db.base import Db, Transaction, prefix_end
from ..db.writer import after_commit
from ..rpc.system import System
from ..table.schema import E
from ..table.table import Table
from ..util.background import WorkerState
from ..util.ids import partition_hash, partition_of
from .index_counter import CounterEntry, Slot
from .s3.mpu_table import MultipartUpload
from .s3.object_table import UPLOADING, Object

if TYPE_CHECKING:
    from .garage import Garage

log = logging.getLogger(__name__)

LOCAL_TREE = "local_counter:bucket_counter"
DIRTY_TREE = "local_counter:bucket_counter:dirty"  # bucket id -> change id, to publish
OLD_TREE = "bucket_counters"  # node-local counts of earlier releases, replaced by a recount
INIT_KEY = b"init"  # shorter than any row key (bucket id + partition)
ID_LEN = 32  # bucket ids
FIELDS = ("objects", "bytes", "unfinished_uploads", "mpu_parts", "mpu_bytes")
_SCAN_BATCH = 1000


def object_counts(o: Object | None) -> dict[str, int]:
    """What one object entry adds to its bucket's counters (a quota check subtracts it when
    the entry is about to be replaced)."""
    if o is None:
        return {}
    out = {}
    cur = o.current()
    if cur is not None and cur.meta is not None:
        out["objects"] = 1
        out["bytes"] = cur.meta.size
    n_up = sum(1 for v in o.versions if v.state == UPLOADING and v.multipart)
    if n_up:
        out["unfinished_uploads"] = n_up
    return out


def _mpu_counts(m: MultipartUpload | None) -> dict[str, int]:
    if m is None or m.deleted:
        return {}
    parts = m.latest_parts()
    return {"mpu_parts": len(parts), "mpu_bytes": sum(p.size or 0 for _, p in parts.values())}


def slot_partition(pk: bytes) -> int:
    """The partition holding the counted entries of partition key `pk`."""
    return partition_of(partition_hash(pk))


Row = dict[str, tuple[int, int]]  # counter name -> (timestamp, value)


def _row_key(bucket_id: bytes, partition: int) -> bytes:
    return bucket_id + bytes([partition])


# A row on disk: per counter, (index in FIELDS, timestamp, value) packed with struct (the
# hook runs on every object write: msgpack costs several times more here).
_ROW_ITEM = struct.Struct(">BQq")


def _decode_row(raw: bytes) -> Row:
    return {FIELDS[i]: (ts, v) for i, ts, v in _ROW_ITEM.iter_unpack(raw)}


def _encode_row(row: Row) -> bytes:
    return b"".join(_ROW_ITEM.pack(FIELDS.index(n), ts, v) for n, (ts, v) in sorted(row.items()))


class BucketCounters:
    def __init__(self, system: System, db: Db, table: Table[CounterEntry]):
        self.system = system
        self.db = db
        db.open_tree(LOCAL_TREE)
        db.open_tree(DIRTY_TREE)
        db.open_tree(OLD_TREE)
        self.table = table  # sharded by bucket id, schema CounterSchema
        # Change ids in the dirty tree: the propagator drops a mark only if no change came
        # after it read it (the id differs). Unique within this process, random across.
        self._change_ids = itertools.count(int.from_bytes(os.urandom(7)))
        self.on_dirty: Callable[[], None] | None = None  # wakes the propagator

    def _mark_dirty(self, tx: Transaction, bucket_id: bytes) -> None:
        tx.insert(DIRTY_TREE, bucket_id, next(self._change_ids).to_bytes(8, "big"))
        if self.on_dirty is not None:
            after_commit(self.on_dirty)  # the propagator must find the rows committed

    # -- local part: in the caller's transaction
    def _apply(self, tx: Transaction, bucket_id: bytes, partition: int,
               old: dict[str, int], new: dict[str, int]) -> None:
        changed = {f: new.get(f, 0) - old.get(f, 0) for f in set(old) | set(new)}
        changed = {f: d for f, d in changed.items() if d}
        if not changed:
            return
        now = self.system.clock.now_msec()
        key = _row_key(bucket_id, partition)
        raw = tx.get(LOCAL_TREE, key)
        row = _decode_row(raw) if raw else {}
        for name, d in changed.items():
            ts, v = row.get(name, (0, 0))
            # Strictly newer than what this node published before, whatever the clock does.
            row[name] = (max(ts + 1, now), v + d)
        tx.insert(LOCAL_TREE, key, _encode_row(row))
        self._mark_dirty(tx, bucket_id)

    def on_object(self, tx: Transaction, old: Object | None, new: Object | None) -> None:
        bucket = (new or old).bucket_id  # type: ignore[union-attr]
        self._apply(tx, bucket, slot_partition(bucket), object_counts(old), object_counts(new))

    def on_mpu(self, tx: Transaction, old: MultipartUpload | None,
               new: MultipartUpload | None) -> None:
        m = (new or old)
        assert m is not None
        self._apply(tx, m.bucket_id, slot_partition(m.upload_id), _mpu_counts(old),
                    _mpu_counts(new))

    # -- reads
    def _local_rows(self, bucket_id: bytes) -> list[tuple[Slot, tuple[int, int]]]:
        rows = self.db.range(LOCAL_TREE, bucket_id, prefix_end(bucket_id))
        return [((name, k[len(bucket_id)]), tv) for k, raw in rows
                for name, tv in _decode_row(raw).items()]

    def get(self, bucket_id: bytes) -> dict[str, int]:
        """This node's own counts of the bucket (all it stores, whatever the layout)."""
        out = dict.fromkeys(FIELDS, 0)
        for (name, _), (_, v) in self._local_rows(bucket_id):
            out[name] = out.get(name, 0) + v
        return out

    def local_entry(self, bucket_id: bytes) -> CounterEntry:
        e = CounterEntry(bucket_id)
        for slot, row in self._local_rows(bucket_id):
            e.values[slot] = {self.system.node_id: row}
        return e

    async def usage(self, bucket_id: bytes) -> dict[str, int]:
        """The bucket's counts in the cluster: the replicated entry (read quorum) merged with
        this node's local rows (fresher than what the queue has shipped yet)."""
        layout = self.system.layout
        if not layout.storage_nodes_of(slot_partition(bucket_id)):
            # No layout yet: nothing can be stored anywhere but here.
            return self.get(bucket_id)
        entry = await self.table.get(bucket_id) or CounterEntry(bucket_id)
        entry.merge(self.local_entry(bucket_id))
        # A node counts while it stores the partition in a live layout version: during a
        # layout change the old owners still hold everything the new ones are syncing.
        out = dict.fromkeys(FIELDS, 0)
        out.update(entry.totals(layout.storage_nodes_of))
        return out

    # -- recount (first start, repairs)
    def recount_tx(self, tx: Transaction, object_table: Table[Object],
                   mpu_table: Table[MultipartUpload]) -> int:
        """Recompute every local row from the object and mpu entries stored here, in one
        transaction (so no concurrent write is missed or counted twice), and publish the
        result (every bucket: a recount also repairs what the other nodes know). Returns the
        number of rows corrected."""
        counts: dict[bytes, dict[Slot, int]] = {}

        def add(bucket: bytes, partition: int, c: dict[str, int]) -> None:
            slots = counts.setdefault(bucket, {})
            for name, v in c.items():
                slots[(name, partition)] = slots.get((name, partition), 0) + v

        for o in _scan(tx, object_table):
            add(o.bucket_id, slot_partition(o.bucket_id), object_counts(o))
        for m in _scan(tx, mpu_table):
            add(m.bucket_id, slot_partition(m.upload_id), _mpu_counts(m))

        old: dict[bytes, dict[Slot, tuple[int, int]]] = {}
        for k, raw in _scan_raw(tx, LOCAL_TREE):
            if len(k) == ID_LEN + 1:
                slots = old.setdefault(k[:ID_LEN], {})
                for name, tv in _decode_row(raw).items():
                    slots[(name, k[ID_LEN])] = tv
        now = self.system.clock.now_msec()
        corrected = 0
        for bucket in sorted(set(counts) | set(old)):
            new_slots, old_slots = counts.get(bucket, {}), old.get(bucket, {})
            rows: dict[int, Row] = {}
            for (name, p) in set(new_slots) | set(old_slots):
                ts, value = old_slots.get((name, p), (0, 0))
                nv = new_slots.get((name, p), 0)
                if (name, p) not in old_slots or nv != value:
                    ts, value = max(ts + 1, now), nv
                    corrected += 1
                rows.setdefault(p, {})[name] = (ts, value)
            for p, row in rows.items():
                tx.insert(LOCAL_TREE, _row_key(bucket, p), _encode_row(row))
            self._mark_dirty(tx, bucket)
        return corrected

    def initialize(self, object_table: Table[Object],
                   mpu_table: Table[MultipartUpload]) -> None:
        """At start, before any write: a node that never published its counts (a fresh
        node, or one upgraded from node-local counters) counts what it stores and
        publishes it. Synchronous: runs while nothing else writes."""
        if self.db.get(LOCAL_TREE, INIT_KEY) is not None:
            return

        def init(tx: Transaction) -> int:
            n = self.recount_tx(tx, object_table, mpu_table)
            for k, _ in _scan_raw(tx, OLD_TREE):
                tx.remove(OLD_TREE, k)
            tx.insert(LOCAL_TREE, INIT_KEY, b"1")
            return n

        n = self.db.transaction(init)
        if n:
            log.info("bucket counters: %d count(s) set from the entries stored here", n)


def _scan_raw(tx: Transaction, tree: str) -> Iterator[tuple[bytes, bytes]]:
    start: bytes | None = None
    while True:
        rows = tx.range(tree, start, None, _SCAN_BATCH)
        yield from rows
        if len(rows) < _SCAN_BATCH:
            return
        start = rows[-1][0] + b"\x00"


def _scan(tx: Transaction, table: Table[E]) -> Iterator[E]:
    for _, v in _scan_raw(tx, table.data.store):
        yield table.schema.decode(v)


async def recount(g: Garage) -> int:
    """Recompute this node's local bucket counts from its object and mpu tables and publish
    them (a `garage repair` style recount). One write transaction in the db's writer
    thread: writes wait meanwhile, the event loop does not. Returns the number of counts
    (bucket, counter, partition) that were wrong and are now corrected."""
    c = g.counters
    return await g.db.write(lambda tx: c.recount_tx(tx, g.object_table, g.mpu_table))


class CounterPropagator:
    """Publishes the dirty buckets' local rows into the replicated counter table, up to
    `batch` buckets per round (one insert_many, batched per node by the table)."""

    def __init__(self, counters: BucketCounters, batch: int = 100):
        self.c = counters
        self.batch = batch
        self.name = "bucket counters propagation"
        self._wake = asyncio.Event()
        counters.on_dirty = self._wake.set
        self.done = 0
        # Each round starts past the previous one's marks (wrapping around): buckets whose
        # replicas are unreachable do not fill every batch while the others wait.
        self._cursor: bytes | None = None

    async def work(self) -> WorkerState:
        self._wake.clear()  # here, not in wait_for_work: a mark made meanwhile is not missed
        marks = self.c.db.range(DIRTY_TREE, self._cursor, None, self.batch)
        if not marks and self._cursor is not None:
            self._cursor = None
            marks = self.c.db.range(DIRTY_TREE, None, None, self.batch)
        if not marks:
            return WorkerState.IDLE
        # Rows read after the marks: at least as new as the changes the marks stand for.
        entries = {b: self.c.local_entry(b) for b, _ in marks}
        error: Exception | None = None
        try:
            await self.c.table.insert_many(entries.values())
            shipped = marks
        except Exception as e:  # retried per partition, then re-raised
            error = e
            shipped = await self._ship_per_partition(marks, entries)

        def unmark(tx: Transaction) -> None:
            for k, v in shipped:
                if tx.get(DIRTY_TREE, k) == v:  # a later change keeps its mark
                    tx.remove(DIRTY_TREE, k)
        await self.c.db.write(unmark)
        self.done += len(shipped)
        self._cursor = marks[-1][0] + b"\x00"
        if error is not None:
            raise error  # the runner counts it and backs off before the next round
        return WorkerState.BUSY

    async def _ship_per_partition(self, marks: list[tuple[bytes, bytes]],
                                  entries: dict[bytes, CounterEntry]
                                  ) -> list[tuple[bytes, bytes]]:
        """After a failed batch: one insert per partition, so buckets whose replicas are
        reachable are not held back by one whose replicas are not. Returns what shipped."""
        groups: dict[int, list[tuple[bytes, bytes]]] = {}
        for m in marks:
            groups.setdefault(slot_partition(m[0]), []).append(m)
        results = await asyncio.gather(
            *(self.c.table.insert_many([entries[b] for b, _ in g]) for g in groups.values()),
            return_exceptions=True)
        return [m for g, r in zip(groups.values(), results, strict=True)
                if not isinstance(r, BaseException) for m in g]

    async def wait_for_work(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=10)
        except TimeoutError:
            pass

    def status(self) -> dict[str, object]:
        return {"queueLength": self.c.db.tree_len(DIRTY_TREE),
                "progress": f"{self.done} bucket counts published"}
