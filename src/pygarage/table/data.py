"""Local storage of one table: entries, and the queue of inserts hooks asked for."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic

from ..db.base import Db, Transaction
from ..db.writer import after_commit
from ..util.ids import partition_hash
from .merkle_tree import TableMerkle
from .schema import E, Entry, TableSchema

log = logging.getLogger(__name__)


class WriteRefused(Exception):
    """Raised by a table's write check, inside the write's transaction: the transaction rolls
    back, `cleanup` then runs in a transaction of its own (to free what the refused entry
    would have owned), and `error` is what the writer gets."""

    def __init__(self, error: Exception, cleanup: Callable[[Transaction], None] | None = None):
        super().__init__(str(error))
        self.error = error
        self.cleanup = cleanup


def tree_key(pk: bytes, sk: bytes) -> bytes:
    return partition_hash(pk) + sk


class TableData(Generic[E]):
    def __init__(self, db: Db, schema: TableSchema[E]):
        self.db = db
        self.schema = schema
        self.store = f"{schema.name}:table"
        self.insert_queue = f"{schema.name}:insert_queue"
        # Run on every write through update_entry (the local writers' path), in the write's
        # transaction, before the merge; it may raise WriteRefused. Merges of entries
        # replicated from elsewhere (update_entry_tx, insert queues) are never refused.
        self.write_check: Callable[[Transaction, E], None] | None = None
        db.open_tree(self.store)
        db.open_tree(self.insert_queue)
        self.on_queued: Callable[[], None] | None = None
        # Tombstone GC (table/gc.py): told, in the write's transaction, of every write that
        # leaves a tombstone (table key, its encoding).
        self.on_tombstone: Callable[[Transaction, bytes, bytes], None] | None = None
        # Also from table/gc.py: is an entry arriving for a key this node does not hold an
        # older value than a tombstone it just collected (a late copy: dropped)?
        self.outdated: Callable[[bytes, Any], bool] | None = None
        # Bumped by every local write of an entry (before its commit): caches of decoded
        # entries (table/cache.py) are valid only while it stays the same.
        self.generation = 0
        # Anti-entropy's view of the entries: updated, or its update recorded (on a running
        # node, see merkle_tree.MerkleUpdater), in each entry's write transaction.
        self.merkle = TableMerkle(db, schema.name, self.store)
        self.merkle.ensure()

    # -- reads
    def read_entry(self, pk: bytes, sk: bytes) -> E | None:
        raw = self.db.get(self.store, tree_key(pk, sk))
        return None if raw is None else self.schema.decode(raw)

    def read_range(self, pk: bytes, start_sk: bytes | None, filter: Any, limit: int,
                   reverse: bool = False, end_sk: bytes | None = None) -> list[E]:
        return [e for e, _ in self.read_range_raw(pk, start_sk, filter, limit, reverse, end_sk)]

    def read_range_raw(self, pk: bytes, start_sk: bytes | None, filter: Any, limit: int,
                       reverse: bool = False, end_sk: bytes | None = None
                       ) -> list[tuple[E, bytes]]:
        """read_range, each entry with its stored encoding (what replicas send)."""
        ph = partition_hash(pk)
        lo = ph + (start_sk or b"")
        hi = ph + end_sk if end_sk is not None else _next_prefix(ph)
        out: list[tuple[E, bytes]] = []
        batch = limit if filter is None else limit + 8  # a few spare rows for the filter
        while len(out) < limit:
            rows = self.db.range(self.store, lo, hi, batch, reverse=reverse)
            for _k, v in rows:
                entry = self.schema.decode(v)
                if self.schema.matches_filter(entry, filter):
                    out.append((entry, v))
                    if len(out) >= limit:
                        break
            if len(rows) < batch:
                break
            batch = min(batch * 2, max(limit, 1024))  # the filter dropped entries: read more
            if reverse:
                hi = rows[-1][0]
            else:
                lo = rows[-1][0] + b"\x00"
        return out

    def scan_range_raw(self, pk: bytes, start_sk: bytes | None, end_sk: bytes | None,
                       filter: Any, limit: int, scan: int, reverse: bool = False
                       ) -> tuple[list[bytes], int, bool]:
        """What a replica answers a quorum listing (table/quorum.py): every stored entry in
        key order, matching the filter or not (a deletion must reach the merge), until
        `limit` of them match or `scan` were read. -> (encoded entries, how many match,
        whether it stopped before the end of the range)."""
        ph = partition_hash(pk)
        lo = ph + (start_sk or b"")
        hi = ph + end_sk if end_sk is not None else _next_prefix(ph)
        out: list[bytes] = []
        matched = 0
        while True:
            n = min(scan - len(out), limit - matched + (0 if filter is None else 8))
            rows = self.db.range(self.store, lo, hi, n, reverse=reverse)
            for _k, v in rows:
                out.append(v)
                if self.schema.matches_filter(self.schema.decode(v), filter):
                    matched += 1
                if matched >= limit or len(out) >= scan:
                    return out, matched, True
            if len(rows) < n:
                return out, matched, False
            if reverse:
                hi = rows[-1][0]
            else:
                lo = rows[-1][0] + b"\x00"

    # -- writes
    async def write_entries(self, entries: list[E]) -> list[E]:
        """Merge entries in the db's writer thread (see db/writer.py). Without a write check
        they are one transaction; with one, each entry is its own transaction, in order,
        and the first refused one stops the rest (as separate writes would)."""
        check = self.write_check
        if check is None:
            return await self.db.write(lambda tx: [self.update_entry_tx(tx, e) for e in entries])
        out = []
        for entry in entries:
            try:
                out.append(await self.db.write(self._checked(check, entry)))
            except WriteRefused as refused:
                if refused.cleanup is not None:
                    await self.db.write(refused.cleanup)
                raise refused.error from None
        return out

    def _checked(self, check: Callable[[Transaction, E], None], entry: E
                 ) -> Callable[[Transaction], E]:
        def checked(tx: Transaction) -> E:
            check(tx, entry)
            return self.update_entry_tx(tx, entry)
        return checked

    def update_entry(self, entry: E) -> E:
        """Synchronous write_entries([entry]) on the calling thread: for tests and tools,
        never on a running server's event loop."""
        check = self.write_check
        if check is None:
            return self.db.transaction(lambda tx: self.update_entry_tx(tx, entry))
        try:
            return self.db.transaction(self._checked(check, entry))
        except WriteRefused as refused:
            if refused.cleanup is not None:
                self.db.transaction(refused.cleanup)
            raise refused.error from None

    def update_entry_tx(self, tx: Transaction, entry: E) -> E:
        key = tree_key(entry.partition_key(), entry.sort_key())
        # Bumped now and again once committed (on the loop): an entry cache that re-read the
        # old value between the two (the writer thread has not committed yet) is dropped.
        self.generation += 1
        after_commit(self._bump_generation)
        old_raw = tx.get(self.store, key)
        if old_raw is None:
            if self.outdated is not None and self.outdated(key, entry):
                return entry
            old, merged = None, entry
        else:
            old = self.schema.decode(old_raw)
            merged = self.schema.decode(old_raw)
            merged.merge(entry)
        new_raw = merged.encode()
        if new_raw == old_raw:
            return merged
        tx.insert(self.store, key, new_raw)
        self.merkle.update_tx(tx, key, new_raw)
        if self.on_tombstone is not None and merged.is_tombstone():
            self.on_tombstone(tx, key, new_raw)
        self.schema.updated(tx, old, merged)
        return merged

    def remove_entry_tx(self, tx: Transaction, pk: bytes, sk: bytes,
                        expected: bytes | None = None) -> bool:
        """Drop an entry (tombstone GC), only if still stored as `expected` when given;
        True if removed. The Merkle tree follows (or its record) in the same transaction."""
        key = tree_key(pk, sk)
        raw = tx.get(self.store, key)
        if raw is None or (expected is not None and raw != expected):
            return False
        self.generation += 1
        after_commit(self._bump_generation)
        tx.remove(self.store, key)
        self.merkle.update_tx(tx, key, None)
        self.schema.updated(tx, self.schema.decode(raw), None)
        return True

    def _bump_generation(self) -> None:
        self.generation += 1

    def queue_insert(self, tx: Transaction, entry: Entry) -> None:
        """Called by other tables' hooks: ship this entry to its owners later, after commit."""
        key = tree_key(entry.partition_key(), entry.sort_key())
        old = tx.get(self.insert_queue, key)
        if old is not None:
            merged = self.schema.decode(old)
            merged.merge(entry)  # type: ignore[arg-type]
            tx.insert(self.insert_queue, key, merged.encode())
        else:
            tx.insert(self.insert_queue, key, entry.encode())
        if self.on_queued is not None:
            after_commit(self.on_queued)  # the queue worker must find it committed

    def queued(self, limit: int) -> list[tuple[bytes, bytes]]:
        return self.db.range(self.insert_queue, None, None, limit)

    async def unqueue(self, items: list[tuple[bytes, bytes]]) -> None:
        def tx_fn(tx: Transaction) -> None:
            for k, v in items:
                # Only drop what we shipped: a newer queued value stays for the next round.
                if tx.get(self.insert_queue, k) == v:
                    tx.remove(self.insert_queue, k)
        await self.db.write(tx_fn)

    def merkle_root(self, partition: int) -> bytes:
        """Root hash of this node's Merkle tree of `partition` (0-255): equal on two
        replicas exactly when they hold the same entries of that partition."""
        return self.merkle.root_hash(partition)

    def count(self) -> int:
        return self.db.tree_len(self.store)


def _next_prefix(p: bytes) -> bytes | None:
    b = bytearray(p)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return None
