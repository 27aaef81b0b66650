"""The embedded key-value engine behind one small interface.

A Db holds named Trees of ordered bytes -> bytes. Every write happens in a Transaction, which
is all-or-nothing: table updates (entry + hooks + counters) commit together or not at all.
All calls are synchronous and fast; callers run them on the event loop thread only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

KV = tuple[bytes, bytes]


class TxAbort(Exception):
    """Raise inside a transaction function to roll it back; re-raised to the caller."""


class Transaction(ABC):
    @abstractmethod
    def get(self, tree: str, key: bytes) -> bytes | None: ...

    @abstractmethod
    def insert(self, tree: str, key: bytes, value: bytes) -> None: ...

    @abstractmethod
    def remove(self, tree: str, key: bytes) -> None: ...

    @abstractmethod
    def range(self, tree: str, start: bytes | None = None, end: bytes | None = None,
              limit: int | None = None, reverse: bool = False) -> list[KV]: ...


class Db(ABC):
    engine: str = "?"

    @abstractmethod
    def open_tree(self, name: str) -> None:
        """Create the tree if missing (idempotent)."""

    @abstractmethod
    def transaction(self, fn: Callable[[Transaction], T]) -> T:
        """Run fn in one read-write transaction; commit if it returns, roll back if it raises."""

    @abstractmethod
    def read(self, fn: Callable[[Transaction], T]) -> T:
        """Run fn in a read-only snapshot."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def tree_len(self, tree: str) -> int: ...

    # Conveniences for single operations.
    def get(self, tree: str, key: bytes) -> bytes | None:
        return self.read(lambda tx: tx.get(tree, key))

    def insert(self, tree: str, key: bytes, value: bytes) -> None:
        self.transaction(lambda tx: tx.insert(tree, key, value))

    def remove(self, tree: str, key: bytes) -> None:
        self.transaction(lambda tx: tx.remove(tree, key))

    def range(self, tree: str, start: bytes | None = None, end: bytes | None = None,
              limit: int | None = None, reverse: bool = False) -> list[KV]:
        return self.read(lambda tx: tx.range(tree, start, end, limit, reverse))
