"""What a table stores: entries that are CRDTs, keyed by (partition key, sort key)."""

from __future__ import annotations

from typing import Any, Protocol, Self, TypeVar

from ..db.base import Transaction


class Entry(Protocol):
    def partition_key(self) -> bytes: ...

    def sort_key(self) -> bytes: ...

    def merge(self, other: Self) -> None:
        """Merge other into self in place (commutative, associative, idempotent)."""

    def is_tombstone(self) -> bool: ...

    def encode(self) -> bytes: ...


E = TypeVar("E", bound=Entry)


class TableSchema(Protocol[E]):
    name: str

    def decode(self, data: bytes) -> E: ...

    def updated(self, tx: Transaction, old: E | None, new: E | None) -> None:
        """Hook run in the same transaction as the write. It may only touch local trees and
        queue inserts into other tables; it never awaits the network."""

    def matches_filter(self, entry: E, filter: Any) -> bool: ...
