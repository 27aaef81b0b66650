"""LMDB engine (the default): named sub-databases, one write transaction at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from .base import KV, Db, Transaction

T = TypeVar("T")


class _LmdbTx(Transaction):
    def __init__(self, db: LmdbDb, txn: Any):
        self.db = db
        self.txn = txn

    def get(self, tree: str, key: bytes) -> bytes | None:
        v = self.txn.get(key, db=self.db.handle(tree))
        return None if v is None else bytes(v)

    def insert(self, tree: str, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self.db.handle(tree))

    def remove(self, tree: str, key: bytes) -> None:
        self.txn.delete(key, db=self.db.handle(tree))

    def range(self, tree: str, start: bytes | None = None, end: bytes | None = None,
              limit: int | None = None, reverse: bool = False) -> list[KV]:
        out: list[KV] = []
        with self.txn.cursor(db=self.db.handle(tree)) as cur:
            if not reverse:
                ok = cur.set_range(start) if start is not None else cur.first()
                while ok:
                    k = cur.key()
                    if end is not None and k >= end:
                        break
                    out.append((bytes(k), bytes(cur.value())))
                    if limit is not None and len(out) >= limit:
                        break
                    ok = cur.next()
            else:
                if end is not None:
                    ok = cur.set_range(end)
                    ok = cur.prev() if ok else cur.last()
                else:
                    ok = cur.last()
                while ok:
                    k = cur.key()
                    if start is not None and k < start:
                        break
                    out.append((bytes(k), bytes(cur.value())))
                    if limit is not None and len(out) >= limit:
                        break
                    ok = cur.prev()
        return out


class LmdbDb(Db):
    engine = "lmdb"

    def __init__(self, path: Path, fsync: bool = False, map_size: int = 1 << 40):
        path.mkdir(parents=True, exist_ok=True)
        # sync=False trades the last transactions on power loss for speed, as Garage's
        # metadata_fsync=false does; a process crash (kill -9) loses nothing either way.
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=128, sync=fsync,
                             metasync=False, readahead=False)
        self._handles: dict[str, Any] = {}
        self._lock = threading.RLock()

    def handle(self, tree: str) -> Any:
        h = self._handles.get(tree)
        if h is None:
            raise KeyError(f"tree not opened: {tree}")
        return h

    def open_tree(self, name: str) -> None:
        if name not in self._handles:
            self._handles[name] = self.env.open_db(name.encode())

    def transaction(self, fn: Callable[[Transaction], T]) -> T:
        with self._lock, self.env.begin(write=True) as txn:
            return fn(_LmdbTx(self, txn))

    def read(self, fn: Callable[[Transaction], T]) -> T:
        with self.env.begin(write=False) as txn:
            return fn(_LmdbTx(self, txn))

    def tree_len(self, tree: str) -> int:
        with self.env.begin() as txn:
            return int(txn.stat(self.handle(tree))["entries"])

    def close(self) -> None:
        self.env.close()
