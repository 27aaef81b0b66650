"""LMDB engine (the default): named sub-databases, one write transaction at a time."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import msgpack

from .base import KV, Db, Outcome, Transaction

T = TypeVar("T")
log = logging.getLogger(__name__)

# LMDB refuses keys over 511 bytes, but table keys are a 32-byte hash plus the sort key, and
# S3 object keys may be 1024 bytes. A key longer than _HEAD bytes is stored in two parts:
#   - a "group" entry under its first _HEAD bytes + b"\x00", whose value is an 8-byte id
#     given to that head the first time a long key with it is written (never rewritten
#     after: the cost of an insert does not depend on how many long keys share the head);
#   - a member entry id + key[_HEAD:] -> value in the shared _MEMBERS sub-database, itself
#     stored by the same rule (a tail still too long gets a group of its own there).
# Plain keys are at most _HEAD bytes, so no plain key sorts between a group entry and its
# members (every member starts with the head): a scan meeting a group entry scans its
# members (in the id's range of _MEMBERS, in the same order), and ordered ranges stay exact.
_HEAD = 510
_GROUP_LEN = _HEAD + 1
_ID_LEN = 8
_LONG_DB = b"__pg_long_keys"      # tree name -> (long keys - groups), so tree_len stays exact
_MEMBERS_DB = b"__pg_long_members"  # group id + rest of the key -> value
_NEXT_ID = b"\x00next_group_id"     # in _LONG_DB (tree names never start with NUL)
_FORMAT = b"\x00format2:"           # + tree name: the tree's groups are in this format


def _group_key(key: bytes) -> bytes:
    return key[:_HEAD] + b"\x00"


def _is_group(k: bytes) -> bool:
    return len(k) == _GROUP_LEN


def _id_end(gid: bytes) -> bytes:
    return (int.from_bytes(gid, "big") + 1).to_bytes(_ID_LEN, "big")


def _member_bounds(head: bytes, gid: bytes, start: bytes | None, end: bytes | None
                   ) -> tuple[bytes, bytes] | None:
    """[start, end) of the tree -> the matching range of the group's members, or None."""
    lo, hi = gid, _id_end(gid)
    if start is not None and start > head:
        if start[:_HEAD] != head:
            return None  # start is above every key with this head
        lo = gid + start[_HEAD:]
    if end is not None:
        if end <= head:
            return None
        if end[:_HEAD] == head:
            hi = gid + end[_HEAD:]
    return (lo, hi) if lo < hi else None


class _LmdbTx(Transaction):
    def __init__(self, db: LmdbDb, txn: Any):
        self.db = db
        self.txn = txn

    # -- one level: `h` is a tree's handle or the members' one
    def _get(self, h: Any, key: bytes) -> bytes | None:
        if len(key) > _HEAD:
            gid = self.txn.get(_group_key(key), db=h)
            if gid is None:
                return None
            return self._get(self.db.members, bytes(gid) + key[_HEAD:])
        v = self.txn.get(key, db=h)
        return None if v is None else bytes(v)

    def _put(self, h: Any, key: bytes, value: bytes) -> tuple[bool, bool]:
        """-> (the key is new, a group entry was created in `h`)."""
        if len(key) <= _HEAD:
            return self.txn.replace(key, value, db=h) is None, False
        gk = _group_key(key)
        raw = self.txn.get(gk, db=h)
        created = raw is None
        if raw is None:
            gid = self._new_group_id()
            self.txn.put(gk, gid, db=h)
        else:
            gid = bytes(raw)
        new, _ = self._put(self.db.members, gid + key[_HEAD:], value)
        return new, created

    def _del(self, h: Any, key: bytes) -> tuple[bool, bool]:
        """-> (the key existed, a group entry was removed from `h`)."""
        if len(key) <= _HEAD:
            return bool(self.txn.delete(key, db=h)), False
        gk = _group_key(key)
        raw = self.txn.get(gk, db=h)
        if raw is None:
            return False, False
        gid = bytes(raw)
        existed, _ = self._del(self.db.members, gid + key[_HEAD:])
        if not existed:
            return False, False
        with self.txn.cursor(db=self.db.members) as cur:
            empty = not cur.set_range(gid) or not bytes(cur.key()).startswith(gid)
        if empty:
            self.txn.delete(gk, db=h)
        return True, empty

    def _new_group_id(self) -> bytes:
        raw = self.txn.get(_NEXT_ID, db=self.db.long_db)
        n = int.from_bytes(raw, "big") if raw is not None else 1
        self.txn.put(_NEXT_ID, (n + 1).to_bytes(_ID_LEN, "big"), db=self.db.long_db)
        return n.to_bytes(_ID_LEN, "big")

    def _scan(self, h: Any, start: bytes | None, end: bytes | None,
              reverse: bool) -> Iterator[KV]:
        """Every (key, value) of one level with start <= key < end, in order."""
        with self.txn.cursor(db=h) as cur:
            if not reverse:
                # A long start key's group entry sorts just before it (nothing in between).
                seek = _group_key(start) if start is not None and len(start) > _HEAD else start
                ok = cur.set_range(seek) if seek is not None else cur.first()
            elif end is not None:
                ok = cur.prev() if cur.set_range(end) else cur.last()
            else:
                ok = cur.last()
            while ok:
                k = bytes(cur.key())
                if not reverse and end is not None and k >= end:
                    break  # a group entry >= end: its members are too
                if _is_group(k):
                    head = k[:_HEAD]
                    gid = bytes(cur.value())
                    bounds = _member_bounds(head, gid, start, end)
                    if bounds is not None:
                        for mk, mv in self._scan(self.db.members, bounds[0], bounds[1],
                                                 reverse):
                            yield head + mk[_ID_LEN:], mv
                    if reverse and start is not None and k < start:
                        break  # members at or above start were scanned just above
                elif (start is None or k >= start) and (end is None or k < end):
                    yield k, bytes(cur.value())
                elif reverse and start is not None and k < start:
                    break
                ok = cur.prev() if reverse else cur.next()

    # -- the Transaction interface
    def get(self, tree: str, key: bytes) -> bytes | None:
        return self._get(self.db.handle(tree), key)

    def insert(self, tree: str, key: bytes, value: bytes) -> None:
        new, created = self._put(self.db.handle(tree), key, value)
        if len(key) > _HEAD:
            self._count_long(tree, int(new) - int(created))

    def remove(self, tree: str, key: bytes) -> None:
        existed, dropped = self._del(self.db.handle(tree), key)
        if len(key) > _HEAD:
            self._count_long(tree, int(dropped) - int(existed))

    def _count_long(self, tree: str, delta: int) -> None:
        if delta:
            raw = self.txn.get(tree.encode(), db=self.db.long_db)
            extra = int.from_bytes(raw, "big", signed=True) if raw is not None else 0
            self.txn.put(tree.encode(), (extra + delta).to_bytes(8, "big", signed=True),
                         db=self.db.long_db)

    def range(self, tree: str, start: bytes | None = None, end: bytes | None = None,
              limit: int | None = None, reverse: bool = False) -> list[KV]:
        if limit is not None and limit <= 0:
            return []  # as SQL's LIMIT 0
        it = self._scan(self.db.handle(tree), start, end, reverse)
        return list(it if limit is None else itertools.islice(it, limit))

    def migrate_groups_v1(self, tree: str) -> int:
        """Groups written by the first format (one entry holding the msgpack list of every
        member) -> this format. The count of long keys and groups is unchanged."""
        h = self.db.handle(tree)
        old: list[tuple[bytes, Any]] = []
        with self.txn.cursor(db=h) as cur:
            ok = cur.first()
            while ok:
                k = bytes(cur.key())
                if _is_group(k):
                    old.append((k, bytes(cur.value())))
                ok = cur.next()
        n = 0
        for gk, raw in old:
            self.txn.delete(gk, db=h)
            for mk, mv in msgpack.unpackb(raw, use_list=True):
                self._put(h, bytes(mk), bytes(mv))
                n += 1
        return n


class LmdbDb(Db):
    engine = "lmdb"

    def __init__(self, path: Path, fsync: bool = False, map_size: int = 1 << 40):
        path.mkdir(parents=True, exist_ok=True)
        # metadata_fsync=true: a commit returns once data and meta pages are on disk, so an
        # acknowledged write survives power loss. false trades the last transactions on
        # power loss for speed, as Garage does; a process crash (kill -9) loses nothing
        # either way.
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=128, sync=fsync,
                             metasync=fsync, readahead=False)
        self._handles: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.long_db = self.env.open_db(_LONG_DB)
        self.members = self.env.open_db(_MEMBERS_DB)

    def handle(self, tree: str) -> Any:
        h = self._handles.get(tree)
        if h is None:
            raise KeyError(f"tree not opened: {tree}")
        return h

    def open_tree(self, name: str) -> None:
        # Under the write lock of this process: py-lmdb's open_db waits for LMDB's write
        # lock with the GIL held, so opening a tree while another thread is inside a write
        # transaction (which needs the GIL to finish) would hang both threads.
        with self._lock:
            if name not in self._handles:
                self._handles[name] = self.env.open_db(name.encode())
                self._upgrade(name)

    def _upgrade(self, name: str) -> None:
        """Convert the tree's long-key groups from the first format, once."""
        flag = _FORMAT + name.encode()
        with self.env.begin() as txn:
            if txn.get(flag, db=self.long_db) is not None:
                return

        def upgrade(tx: Transaction) -> int:
            assert isinstance(tx, _LmdbTx)
            n = tx.migrate_groups_v1(name)
            tx.txn.put(flag, b"", db=self.long_db)
            return n
        n = self.transaction(upgrade)
        if n:
            log.info("tree %s: %d long keys converted to the new storage format", name, n)

    def transaction(self, fn: Callable[[Transaction], T]) -> T:
        with self._lock, self.env.begin(write=True) as txn:
            result = fn(_LmdbTx(self, txn))
        self.commits += 1
        return result

    def run_batch(self, fns: list[Callable[[Transaction], Any]]) -> list[Outcome]:
        out: list[Outcome] = []
        with self._lock:
            # Child transactions need an environment opened without writemap (the default).
            txn = self.env.begin(write=True)
            try:
                for fn in fns:
                    child = self.env.begin(write=True, parent=txn)
                    try:
                        result = fn(_LmdbTx(self, child))
                    except Exception as e:
                        child.abort()
                        out.append((False, e))
                        continue
                    child.commit()
                    out.append((True, result))
            except BaseException:
                txn.abort()
                raise
            txn.commit()
        self.commits += 1
        return out

    def read(self, fn: Callable[[Transaction], T]) -> T:
        with self.env.begin(write=False) as txn:
            return fn(_LmdbTx(self, txn))

    def tree_len(self, tree: str) -> int:
        with self.env.begin() as txn:
            raw = txn.get(tree.encode(), db=self.long_db)
            extra = int.from_bytes(raw, "big", signed=True) if raw is not None else 0
            return int(txn.stat(self.handle(tree))["entries"]) + extra

    def snapshot(self, to: Path) -> None:
        """`to`/data.mdb, compacted (free pages left out), from one read transaction: the
        directory opens as an LMDB environment, as metadata_dir/db.lmdb does."""
        self.env.copy(str(to), compact=True)

    def _close(self) -> None:
        self.env.close()
