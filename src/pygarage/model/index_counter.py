"""Replicated index counters (Garage's index_counter): the counter table's entry and schema.

One entry per bucket (partition key = bucket id, no sort key). Every storage node counts the
entries it stores (objects, multipart uploads) in its own local tree, in the same
transaction as the entry write, and publishes its counts here. A count is kept per *slot*:
(counter name, partition the counted entries live in), and per node as (timestamp, value).

Why slots carry a partition: the objects of a bucket all live in the bucket's partition, so
each replica of it counts the same objects, and the bucket's count is the MAX over the
replicas (a replica that missed a write counts less; summing would count RF times). Upload
entries are keyed by upload id and spread over every partition: their total is the sum over
partitions of the max over that partition's replicas. One rule covers both.

Merge (pure, per slot, per node): the higher timestamp wins; on equal timestamps the higher
value wins, so every replica picks the same winner whatever the merge order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..db.base import Transaction
from ..util.codec import pack, unpack

MARKER = b"PGcnt1"

Slot = tuple[str, int]  # (counter name, partition of the counted entries)
NodeValues = dict[str, tuple[int, int]]  # node id (hex) -> (timestamp, value)


def _newer(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a if a >= b else b  # tuples: timestamp first, then value as the tie-break


@dataclass
class CounterEntry:
    bucket_id: bytes
    values: dict[Slot, NodeValues] = field(default_factory=dict)

    def partition_key(self) -> bytes:
        return self.bucket_id

    def sort_key(self) -> bytes:
        return b""

    def is_tombstone(self) -> bool:
        return all(v == 0 for nv in self.values.values() for _, v in nv.values())

    def merge(self, other: CounterEntry) -> None:
        for slot, nv2 in other.values.items():
            nv = self.values.setdefault(slot, {})
            for node, tv in nv2.items():
                nv[node] = _newer(nv[node], tv) if node in nv else tv

    def encode(self) -> bytes:
        # Canonical order: equal entries encode to equal bytes (Merkle hashes, no-op writes).
        slots = [[name, p, [[n, t, v] for n, (t, v) in sorted(nv.items())]]
                 for (name, p), nv in sorted(self.values.items())]
        return pack(MARKER, [self.bucket_id, slots])

    @staticmethod
    def decode(data: bytes) -> CounterEntry:
        bucket_id, slots = unpack(MARKER, data)
        return CounterEntry(bucket_id, {(name, p): {n: (t, v) for n, t, v in nvs}
                                        for name, p, nvs in slots})

    def totals(self, nodes_of: Callable[[int], list[str]]) -> dict[str, int]:
        """(pure) Per counter name: the sum over slots of the max over the nodes that store
        the slot's partition (`nodes_of`). Values of other nodes (a node that left the
        layout, or never stored the partition) are ignored."""
        out: dict[str, int] = {}
        nodes_cache: dict[int, list[str]] = {}
        for (name, p), nv in self.values.items():
            nodes = nodes_cache.get(p)
            if nodes is None:
                nodes = nodes_cache[p] = nodes_of(p)
            vals = [v for n, (_, v) in nv.items() if n in nodes]
            if vals:
                out[name] = out.get(name, 0) + max(vals)
        return out


class CounterSchema:
    name = "bucket_counter"

    def decode(self, data: bytes) -> CounterEntry:
        return CounterEntry.decode(data)

    def updated(self, tx: Transaction, old: CounterEntry | None,
                new: CounterEntry | None) -> None:
        pass  # nothing depends on the replicated counters

    def matches_filter(self, entry: CounterEntry, filter: Any) -> bool:
        return True
