"""Block reference table: (block hash, version uuid) -> deleted flag.

It drives the block refcounts: a new live reference increments, its deletion decrements,
in the same transaction as the table write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...db.base import Transaction
from ...util.codec import pack, unpack

MARKER = b"PGbref1"


@dataclass
class BlockRef:
    block: bytes
    version: bytes
    deleted: bool = False

    def partition_key(self) -> bytes:
        return self.block

    def sort_key(self) -> bytes:
        return self.version

    def is_tombstone(self) -> bool:
        return self.deleted

    def encode(self) -> bytes:
        return pack(MARKER, [self.block, self.version, self.deleted])

    @staticmethod
    def decode(data: bytes) -> BlockRef:
        b, v, d = unpack(MARKER, data)
        return BlockRef(b, v, d)

    def merge(self, other: BlockRef) -> None:
        self.deleted = self.deleted or other.deleted


class BlockRefSchema:
    name = "block_ref"

    def __init__(self, incref: Callable[[Transaction, bytes], None],
                 decref: Callable[[Transaction, bytes], None]):
        self._incref = incref
        self._decref = decref

    def decode(self, data: bytes) -> BlockRef:
        return BlockRef.decode(data)

    def updated(self, tx: Transaction, old: BlockRef | None, new: BlockRef | None) -> None:
        was = old is not None and not old.deleted
        now = new is not None and not new.deleted
        if now and not was and old is None:
            self._incref(tx, new.block)  # type: ignore[union-attr]
        elif was and not now:
            self._decref(tx, old.block)  # type: ignore[union-attr]

    def matches_filter(self, entry: BlockRef, filter: Any) -> bool:
        return not entry.deleted
