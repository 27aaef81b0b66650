"""LMDB engine (the default): named sub-databases, one write transaction at a time."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import msgpack

from .base import KV, Db, Transaction

T = TypeVar("T")

# LMDB refuses keys over 511 bytes, but table keys are a 32-byte hash plus the sort key, and
# S3 object keys may be 1024 bytes. A key longer than _HEAD bytes is kept in a "group" entry
# stored under its first _HEAD bytes + b"\x00": the group's value is the sorted list of the
# (key, value) pairs of every long key with that head. Plain keys are at most _HEAD bytes,
# so no plain key sorts between a group and its members: ordered ranges stay exact.
_HEAD = 510
_GROUP_LEN = _HEAD + 1
_LONG_DB = b"__pg_long_keys"  # tree name -> (long keys - groups), so tree_len stays exact


def _group_key(key: bytes) -> bytes:
    return key[:_HEAD] + b"\x00"


def _members(raw: Any) -> list[KV]:
    return [(bytes(k), bytes(v)) for k, v in msgpack.unpackb(bytes(raw), use_list=True)]


class _LmdbTx(Transaction):
    def __init__(self, db: LmdbDb, txn: Any):
        self.db = db
        self.txn = txn

    def get(self, tree: str, key: bytes) -> bytes | None:
        if len(key) > _HEAD:
            members = self._group(tree, key)
            i = bisect.bisect_left(members, (key,))
            return members[i][1] if i < len(members) and members[i][0] == key else None
        v = self.txn.get(key, db=self.db.handle(tree))
        return None if v is None else bytes(v)

    def insert(self, tree: str, key: bytes, value: bytes) -> None:
        if len(key) > _HEAD:
            members = self._group(tree, key)
            before = len(members)
            i = bisect.bisect_left(members, (key,))
            if i < len(members) and members[i][0] == key:
                members[i] = (key, value)
            else:
                members.insert(i, (key, value))
            self._store_group(tree, key, members, before)
            return
        self.txn.put(key, value, db=self.db.handle(tree))

    def remove(self, tree: str, key: bytes) -> None:
        if len(key) > _HEAD:
            members = self._group(tree, key)
            before = len(members)
            i = bisect.bisect_left(members, (key,))
            if i < len(members) and members[i][0] == key:
                del members[i]
                self._store_group(tree, key, members, before)
            return
        self.txn.delete(key, db=self.db.handle(tree))

    def _group(self, tree: str, key: bytes) -> list[KV]:
        raw = self.txn.get(_group_key(key), db=self.db.handle(tree))
        return [] if raw is None else _members(raw)

    def _store_group(self, tree: str, key: bytes, members: list[KV], before: int) -> None:
        h = self.db.handle(tree)
        if members:
            self.txn.put(_group_key(key), msgpack.packb([list(m) for m in members]), db=h)
        else:
            self.txn.delete(_group_key(key), db=h)
        delta = (max(len(members) - 1, 0)) - (max(before - 1, 0))
        if delta:
            raw = self.txn.get(tree.encode(), db=self.db.long_db)
            extra = int.from_bytes(raw, "big", signed=True) if raw is not None else 0
            self.txn.put(tree.encode(), (extra + delta).to_bytes(8, "big", signed=True),
                         db=self.db.long_db)

    def range(self, tree: str, start: bytes | None = None, end: bytes | None = None,
              limit: int | None = None, reverse: bool = False) -> list[KV]:
        out: list[KV] = []
        if limit is not None and limit <= 0:
            return out  # as SQL's LIMIT 0

        def entries(k: bytes, v: Any) -> list[KV]:
            if len(k) != _GROUP_LEN:
                return [(k, bytes(v))]
            items = [(mk, mv) for mk, mv in _members(v)
                     if (start is None or mk >= start) and (end is None or mk < end)]
            return items[::-1] if reverse else items

        with self.txn.cursor(db=self.db.handle(tree)) as cur:
            if not reverse:
                # A long start key's group sorts just before it (and nothing in between).
                seek = _group_key(start) if start is not None and len(start) > _HEAD else start
                ok = cur.set_range(seek) if seek is not None else cur.first()
                while ok:
                    k = bytes(cur.key())
                    if end is not None and k >= end:
                        break
                    for kv in entries(k, cur.value()):
                        out.append(kv)
                        if limit is not None and len(out) >= limit:
                            return out
                    ok = cur.next()
            else:
                if end is not None:
                    ok = cur.set_range(end)
                    ok = cur.prev() if ok else cur.last()
                else:
                    ok = cur.last()
                while ok:
                    k = bytes(cur.key())
                    if start is not None and k < start and len(k) != _GROUP_LEN:
                        break
                    for kv in entries(k, cur.value()):
                        out.append(kv)
                        if limit is not None and len(out) >= limit:
                            return out
                    if start is not None and k < start:
                        break  # a group below start: its members were filtered above
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
        self.long_db = self.env.open_db(_LONG_DB)

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
            raw = txn.get(tree.encode(), db=self.long_db)
            extra = int.from_bytes(raw, "big", signed=True) if raw is not None else 0
            return int(txn.stat(self.handle(tree))["entries"]) + extra

    def close(self) -> None:
        self.env.close()
