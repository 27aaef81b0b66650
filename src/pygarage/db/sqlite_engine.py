"""SQLite engine: one table per tree, WAL journal, fsync per metadata_fsync.

Writes use one connection (under a lock: the writer thread, or a synchronous transaction);
reads use a connection per thread, so a read never waits for a commit (WAL readers see the
last committed state)."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .base import KV, Db, Outcome, Transaction

T = TypeVar("T")


def _table(tree: str) -> str:
    # Tree names are ours, but keep SQL identifiers safe anyway.
    return "t_" + re.sub(r"[^A-Za-z0-9_]", "_", tree)


class _SqliteTx(Transaction):
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def get(self, tree: str, key: bytes) -> bytes | None:
        row = self.conn.execute(f"SELECT v FROM {_table(tree)} WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def insert(self, tree: str, key: bytes, value: bytes) -> None:
        self.conn.execute(f"INSERT OR REPLACE INTO {_table(tree)} (k, v) VALUES (?, ?)",
                          (key, value))

    def remove(self, tree: str, key: bytes) -> None:
        self.conn.execute(f"DELETE FROM {_table(tree)} WHERE k = ?", (key,))

    def range(self, tree: str, start: bytes | None = None, end: bytes | None = None,
              limit: int | None = None, reverse: bool = False) -> list[KV]:
        conds, args = [], []
        if start is not None:
            conds.append("k >= ?")
            args.append(start)
        if end is not None:
            conds.append("k < ?")
            args.append(end)
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        order = "DESC" if reverse else "ASC"
        lim = f"LIMIT {int(limit)}" if limit is not None else ""
        rows = self.conn.execute(
            f"SELECT k, v FROM {_table(tree)} {where} ORDER BY k {order} {lim}", args)
        return [(bytes(k), bytes(v)) for k, v in rows]


class SqliteDb(Db):
    engine = "sqlite"

    def __init__(self, path: Path, fsync: bool = False):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit is synced, so an acknowledged write survives power loss (in WAL
        # mode NORMAL may lose the last commits). OFF still survives a process crash.
        self.conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
        self._lock = threading.RLock()
        self._trees: set[str] = set()
        self._path = path
        self._readers = threading.local()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            # Only this thread uses it; close() (another thread) closes it at the end.
            conn = sqlite3.connect(str(self._path), isolation_level=None,
                                   check_same_thread=False)
            self._readers.conn = conn
            with self._readers_lock:
                self._all_readers.append(conn)
        return conn

    def open_tree(self, name: str) -> None:
        if name not in self._trees:
            with self._lock:
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS {_table(name)} "
                                  "(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
            self._trees.add(name)

    def transaction(self, fn: Callable[[Transaction], T]) -> T:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(_SqliteTx(self.conn))
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            self.commits += 1
            return result

    def run_batch(self, fns: list[Callable[[Transaction], Any]]) -> list[Outcome]:
        out: list[Outcome] = []
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                tx = _SqliteTx(self.conn)
                for fn in fns:
                    self.conn.execute("SAVEPOINT fn")
                    try:
                        result = fn(tx)
                    except Exception as e:
                        self.conn.execute("ROLLBACK TO fn")
                        self.conn.execute("RELEASE fn")
                        out.append((False, e))
                        continue
                    self.conn.execute("RELEASE fn")
                    out.append((True, result))
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.commits += 1
        return out

    def read(self, fn: Callable[[Transaction], T]) -> T:
        conn = self._reader()
        conn.execute("BEGIN")  # one snapshot for every statement of fn
        try:
            return fn(_SqliteTx(conn))
        finally:
            conn.execute("COMMIT")

    def tree_len(self, tree: str) -> int:
        conn = self._reader()
        return int(conn.execute(f"SELECT COUNT(*) FROM {_table(tree)}").fetchone()[0])

    def snapshot(self, to: Path) -> None:
        """`to`/db.sqlite through SQLite's online backup, in one step (a single read
        snapshot: consistent, and writers are not blocked in WAL mode)."""
        src = sqlite3.connect(str(self._path))
        dst = sqlite3.connect(str(to / "db.sqlite"))
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()

    def _close(self) -> None:
        with self._readers_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()
        with self._lock:
            self.conn.close()
