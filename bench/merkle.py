#!/usr/bin/env python3
"""Cost of the Merkle tree on table writes: inserts/s through TableData.update_entry (one
transaction per entry, as a small PUT's object write), with and without the Merkle update.

Not a test. Also the CPU time of the table writes of one 4 KiB PutObject (object uploading,
block_ref, version, object complete, through the model's tables and hooks), with and
without the tree. Two key shapes: "spread" (random partition keys: versions, block refs) and
"one partition" (one partition key, many sort keys: the objects of one bucket, whose trie
gets deepest). Each run is a fresh database filled with --prefill entries first, then
--entries timed inserts of new keys.

    python bench/merkle.py [--entries 5000] [--prefill 50000] [--engine lmdb|sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from pygarage.db.base import Transaction
from pygarage.db.open import open_db
from pygarage.table.data import TableData


@dataclass
class Ent:
    pk: bytes
    sk: bytes
    body: bytes

    def partition_key(self) -> bytes:
        return self.pk

    def sort_key(self) -> bytes:
        return self.sk

    def merge(self, other: Ent) -> None:
        self.body = max(self.body, other.body)

    def is_tombstone(self) -> bool:
        return False

    def encode(self) -> bytes:
        return msgpack.packb([self.pk, self.sk, self.body])


class EntSchema:
    name = "bench"

    def decode(self, data: bytes) -> Ent:
        return Ent(*msgpack.unpackb(data))

    def updated(self, tx: Transaction, old: Ent | None, new: Ent | None) -> None:
        pass

    def matches_filter(self, entry: Ent, filter: Any) -> bool:
        return True


class _NoMerkle:
    """Stands in for TableMerkle to time the write path as it was before the tree."""

    deferred = False

    def update_tx(self, tx: Transaction, key: bytes, encoded: bytes | None) -> None:
        pass


def _entry(shape: str, i: int) -> Ent:
    body = os.urandom(150)  # about an object entry's size
    if shape == "spread":
        return Ent(os.urandom(32), b"", body)
    return Ent(b"bucket-id" * 4, f"photos/2026/{i:09d}.jpg".encode(), body)


def run(engine: str, shape: str, merkle: bool, prefill: int, n: int,
        deferred: bool = False) -> float:
    """Inserts/s. deferred: as a running node, each write only records its Merkle update,
    applied afterwards in batches of DEFERRED_BATCH (timed too: the figure counts both)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(engine, Path(tmp), lmdb_map_size=1 << 32)
        t = TableData(db, EntSchema())
        if not merkle:
            t.merkle = _NoMerkle()  # type: ignore[assignment]

        def fill(tx: Transaction) -> None:
            for i in range(prefill):
                t.update_entry_tx(tx, _entry(shape, i))
        db.transaction(fill)
        entries = [_entry(shape, prefill + i) for i in range(n)]
        t.merkle.deferred = deferred
        t0 = time.perf_counter()
        for e in entries:
            t.update_entry(e)
        while deferred and db.transaction(
                lambda tx: t.merkle.apply_todo_tx(tx, DEFERRED_BATCH)):
            pass
        dt = time.perf_counter() - t0
        nodes = db.tree_len(f"{EntSchema.name}:merkle")
        db.close()
    if merkle and not deferred:
        print(f"    ({nodes} Merkle nodes for {prefill + n} entries)")
    return n / dt


DEFERRED_BATCH = 200  # about what a node's updater gathers in 0.1 s of small PUTs


async def put_path(merkle: bool, n: int) -> float:
    """CPU microseconds of the table writes of one 4 KiB PUT, over n PUTs into one bucket."""
    from pygarage.api.admin.cluster import ensure_single_node_layout
    from pygarage.model.bucket_table import Bucket
    from pygarage.model.garage import Garage
    from pygarage.model.s3.block_ref_table import BlockRef
    from pygarage.model.s3.object_table import (
        COMPLETE,
        FIRST_BLOCK,
        UPLOADING,
        Object,
        ObjectMeta,
        ObjectVersion,
    )
    from pygarage.model.s3.version_table import Version, VersionBlock
    from pygarage.util.config import config_from_dict

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({"metadata_dir": tmp + "/m", "data_dir": tmp + "/d",
                                "rpc_bind_addr": "127.0.0.1:1", "rpc_secret": "33" * 32,
                                "replication_factor": 1, "db_engine": "lmdb"})
        g = Garage(cfg)
        ensure_single_node_layout(g)
        if not merkle:
            for t in g.tables:
                t.data.merkle = _NoMerkle()  # type: ignore[assignment]
        bid = os.urandom(32)
        g.bucket_table.data.update_entry(Bucket(bid))
        puts = [(os.urandom(32), os.urandom(32), f"dir/key-{i:07d}") for i in range(n)]
        meta = ObjectMeta(4096, "etag", [])
        t0 = time.process_time()
        for i, (uuid, h, key) in enumerate(puts):
            await g.object_table.insert(Object(bid, key, [ObjectVersion(uuid, i, UPLOADING)]))
            await g.block_ref_table.insert(BlockRef(h, uuid))
            await g.version_table.insert(Version(uuid, blocks={(0, 0): VersionBlock(h, 4096)}))
            await g.object_table.insert(Object(bid, key, [ObjectVersion(
                uuid, i, COMPLETE, kind=FIRST_BLOCK, meta=meta, first_block=h)]))
        dt = time.process_time() - t0
        g.db.close()
    return dt / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--prefill", type=int, default=50000)
    ap.add_argument("--engine", default="lmdb")
    args = ap.parse_args()
    print(f"{args.engine}: {args.entries} inserts after {args.prefill} entries")
    for shape in ("spread", "one partition"):
        without = run(args.engine, shape, False, args.prefill, args.entries)
        with_ = run(args.engine, shape, True, args.prefill, args.entries)
        later = run(args.engine, shape, True, args.prefill, args.entries, deferred=True)
        print(f"  {shape:14s} without Merkle {without:8.0f}/s   with {with_:8.0f}/s   "
              f"({with_ / without:.2f}x)   deferred, batches of {DEFERRED_BATCH}: "
              f"{later:8.0f}/s ({later / without:.2f}x)")
    a = asyncio.run(put_path(False, args.entries))
    b = asyncio.run(put_path(True, args.entries))
    print(f"table writes of one 4 KiB PUT (lmdb, {args.entries} PUTs in one bucket): "
          f"{a:.0f} us CPU without Merkle, {b:.0f} us with (+{b - a:.0f})")


if __name__ == "__main__":
    main()
