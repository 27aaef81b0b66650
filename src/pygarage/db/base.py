"""The embedded key-value engine behind one small interface.

A Db holds named Trees of ordered bytes -> bytes. Every write happens in a Transaction, which
is all-or-nothing: table updates (entry + hooks + counters) commit together or not at all.

Writes of a running server go through `await db.write(fn)`: fn runs in the db's writer
thread (writer.py), so commits and their fsyncs never stall the event loop, and concurrent
writes share one commit. `transaction` runs fn synchronously on the calling thread: for
startup, tools and tests only. Reads (`read`, `get`, `range`) may run on any thread, each in
its own snapshot; long scans belong in a worker thread (asyncio.to_thread).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .writer import DbWriter

T = TypeVar("T")

KV = tuple[bytes, bytes]


def prefix_end(prefix: bytes) -> bytes | None:
    """The `end` of a range holding every key that starts with `prefix` (None: no end)."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1]) if stripped else None


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


Outcome = tuple[bool, Any]  # (True, result) or (False, the exception raised)


class Db(ABC):
    engine: str = "?"
    commits: int = 0  # write transactions committed (tests count them)
    _writer: DbWriter | None = None
    _writer_closed: bool = False

    @abstractmethod
    def open_tree(self, name: str) -> None:
        """Create the tree if missing (idempotent)."""

    @abstractmethod
    def transaction(self, fn: Callable[[Transaction], T]) -> T:
        """Run fn in one read-write transaction; commit if it returns, roll back if it raises."""

    @abstractmethod
    def run_batch(self, fns: list[Callable[[Transaction], Any]]) -> list[Outcome]:
        """Run every fn in one write transaction, each in a nested transaction of its own
        (a fn that raises an Exception is rolled back alone), then commit once. Raises (and
        writes nothing) if the commit fails."""

    @property
    def writer(self) -> DbWriter:
        if self._writer is None:
            if self._writer_closed:
                raise RuntimeError("the database is closed")
            from .writer import DbWriter
            self._writer = DbWriter(self)
        return self._writer

    async def write(self, fn: Callable[[Transaction], T]) -> T:
        """Run fn in a write transaction in the writer thread (see writer.py)."""
        return await self.writer.transaction(fn)

    def stop_writer(self) -> None:
        """Let queued writes commit, then stop the writer thread."""
        self._writer_closed = True
        if self._writer is not None:
            self._writer.close()

    @abstractmethod
    def read(self, fn: Callable[[Transaction], T]) -> T:
        """Run fn in a read-only snapshot."""

    def close(self) -> None:
        self.stop_writer()
        self._close()

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def tree_len(self, tree: str) -> int: ...

    @abstractmethod
    def snapshot(self, to: Path) -> None:
        """Write a consistent copy of the whole database into the existing empty directory
        `to` (blocking: for a worker thread); writes go on meanwhile."""

    # Conveniences for single operations.
    def get(self, tree: str, key: bytes) -> bytes | None:
        return self.read(lambda tx: tx.get(tree, key))

    async def write_insert(self, tree: str, key: bytes, value: bytes) -> None:
        await self.write(lambda tx: tx.insert(tree, key, value))

    def insert(self, tree: str, key: bytes, value: bytes) -> None:
        self.transaction(lambda tx: tx.insert(tree, key, value))

    def remove(self, tree: str, key: bytes) -> None:
        self.transaction(lambda tx: tx.remove(tree, key))

    def range(self, tree: str, start: bytes | None = None, end: bytes | None = None,
              limit: int | None = None, reverse: bool = False) -> list[KV]:
        return self.read(lambda tx: tx.range(tree, start, end, limit, reverse))
