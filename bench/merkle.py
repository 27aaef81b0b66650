#!/usr/bin/env python3
"""Cost of the Merkle tree on table writes: inserts/s through TableData.update_entry (one
transaction per entry, as a small PUT's object write), with and without the Merkle update.

Not a test. Two key shapes: "spread" (random partition keys: versions, block refs) and
"one partition" (one partition key, many sort keys: the objects of one bucket, whose trie
gets deepest). Each run is a fresh database filled with --prefill entries first, then
--entries timed inserts of new keys.

    python bench/merkle.py [--entries 5000] [--prefill 50000] [--engine lmdb|sqlite]
"""

from __future__ import annotations

import argparse
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

    def update_tx(self, tx: Transaction, key: bytes, encoded: bytes | None) -> None:
        pass


def _entry(shape: str, i: int) -> Ent:
    body = os.urandom(150)  # about an object entry's size
    if shape == "spread":
        return Ent(os.urandom(32), b"", body)
    return Ent(b"bucket-id" * 4, f"photos/2026/{i:09d}.jpg".encode(), body)


def run(engine: str, shape: str, merkle: bool, prefill: int, n: int) -> float:
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
        t0 = time.perf_counter()
        for e in entries:
            t.update_entry(e)
        dt = time.perf_counter() - t0
        nodes = db.tree_len(f"{EntSchema.name}:merkle")
        db.close()
    if merkle:
        print(f"    ({nodes} Merkle nodes for {prefill + n} entries)")
    return n / dt


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
        print(f"  {shape:14s} without Merkle {without:8.0f}/s   with {with_:8.0f}/s   "
              f"({with_ / without:.2f}x)")


if __name__ == "__main__":
    main()
