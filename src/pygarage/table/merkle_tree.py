"""One table's Merkle tries in the database: the "<table>:merkle" tree, kept in step with the
entries and rebuilt once when missing.

Two ways to keep it in step. Immediate (tables used directly: tests, offline tools): each
entry's write transaction updates the trie. Deferred (a running node, see MerkleUpdater):
the write transaction only records (table key -> new value hash) in "<table>:merkle_todo",
and the updater applies those records in batches, as Garage's merkle_todo does. A write
then costs one db insert instead of a path of node reads and writes, and a batch shares
the reads and writes of the nodes its updates have in common (a bucket's objects all sit in
one partition). The record is in the entry's own transaction, so a crash loses none; the
stored trie lags the entries by the pending records, which a sync pass applies first
(table/sync.py) and which the offline check counts in (matches_entries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..db.base import Db, Transaction
from ..db.writer import after_commit
from ..util.background import WorkerState
from . import merkle

log = logging.getLogger(__name__)

STATE_TREE = "merkle:state"  # table name -> format of its complete Merkle tree
FORMAT = b"1"
_PAGE = 1000
TODO_BATCH = 1000  # pending records applied per write transaction
GATHER_S = 0.1  # the updater lets records gather this long: bigger batches share more nodes


class TableMerkle:
    def __init__(self, db: Db, table: str, store: str):
        self.db = db
        self.table = table
        self.store = store  # the entries' tree
        self.tree = f"{table}:merkle"
        self.todo = f"{table}:merkle_todo"
        db.open_tree(self.tree)
        db.open_tree(self.todo)
        db.open_tree(STATE_TREE)
        # Set by MerkleUpdater, which applies the records; without one, immediate updates.
        self.deferred = False
        self.on_todo: Callable[[], None] | None = None  # after a commit that recorded one

    def update_tx(self, tx: Transaction, key: bytes, encoded: bytes | None) -> None:
        """The entry at `key` is now stored as `encoded` (None: removed)."""
        vhash = None if encoded is None else merkle.value_hash(encoded)
        if self.deferred:
            tx.insert(self.todo, key, vhash or b"")  # the latest write's record wins
            if self.on_todo is not None:
                after_commit(self.on_todo)
            return
        merkle.update(merkle.TxNodeStore(tx, self.tree), key, vhash)

    # -- deferred updates

    def apply_todo_tx(self, tx: Transaction, limit: int = TODO_BATCH) -> int:
        """Apply up to `limit` pending records (in key order) to the trie and drop them, in
        the caller's write transaction; -> how many. Records written after this transaction
        stay for the next one."""
        rows = tx.range(self.todo, None, None, limit)
        if rows:
            merkle.update_many(merkle.TxNodeStore(tx, self.tree), _as_updates(rows))
            for k, _v in rows:
                tx.remove(self.todo, k)
        return len(rows)

    def pending(self) -> int:
        return self.db.tree_len(self.todo)

    async def apply_pending(self) -> int:
        """Apply the records pending now (not the ones written meanwhile, which could go on
        for ever under load); -> how many batches were written."""
        written = 0
        for _ in range(-(-self.pending() // TODO_BATCH)):
            if not await self.db.write(self.apply_todo_tx):
                break
            written += 1
        return written

    def root_hash(self, partition: int) -> bytes:
        return self.db.read(lambda tx: merkle.root_hash(
            merkle.TxNodeStore(tx, self.tree), partition))

    def root_hashes(self) -> list[bytes]:
        return self.db.read(lambda tx: [merkle.root_hash(merkle.TxNodeStore(tx, self.tree), p)
                                        for p in range(merkle.N_PARTITIONS)])

    def roots_of(self, partitions: list[int]) -> list[bytes]:
        """Root hashes of these partitions, in one read (a node's hash is the hash of its
        stored encoding: no decoding)."""
        def read(tx: Transaction) -> list[bytes]:
            raws = [tx.get(self.tree, merkle.node_key(p, b"")) for p in partitions]
            return [merkle.EMPTY_HASH if r is None else merkle.hash_bytes(r) for r in raws]
        return self.db.read(read)

    def read_raw_nodes(self, partition: int, prefixes: list[bytes]) -> list[bytes | None]:
        """Stored encodings of the nodes at these prefixes (None: empty), in one read."""
        def read(tx: Transaction) -> list[bytes | None]:
            return [tx.get(self.tree, merkle.node_key(partition, pre)) for pre in prefixes]
        return self.db.read(read)

    def lookup(self, partition: int) -> merkle.NodeLookup:
        return lambda prefix: self.read_node(partition, prefix)

    def read_node(self, partition: int, prefix: bytes) -> merkle.Node:
        """A node, for a sync comparing this replica's tree with another's."""
        return self.db.read(lambda tx: merkle.read_node(
            merkle.TxNodeStore(tx, self.tree), partition, prefix))

    # -- startup

    def is_complete(self) -> bool:
        return self.db.get(STATE_TREE, self.table.encode()) == FORMAT

    def ensure(self) -> bool:
        """Build the tree from the entries if this database has none yet (written before
        Merkle trees, or a rebuild interrupted by a crash) or if applying the records a
        stopped node left pending finds a corrupted node; True if it did. Pending records
        exist only while an updater runs."""
        if self.is_complete():
            try:
                while self.db.transaction(self.apply_todo_tx):
                    pass
                return False
            except ValueError as e:  # a corrupted node: the tree is derived data, rebuild it
                log.warning("merkle tree of %s: %s; rebuilding it from the entries",
                            self.table, e)
        self.rebuild()
        return True

    def rebuild(self) -> None:
        """Drop the tree and build it from the table's entries, one partition per
        transaction; marked complete in the last one, so a crash midway starts over."""
        t0 = time.monotonic()
        total = self.db.tree_len(self.store)
        # A new database (empty table) is no news; a rebuild of real entries is.
        info = log.info if total else log.debug
        info("merkle rebuild of %s: %d entries", self.table, total)
        self.db.transaction(lambda tx: tx.remove(STATE_TREE, self.table.encode()))
        self._clear(self.tree)
        self._clear(self.todo)  # the rebuild reads every entry as it is now
        done = 0
        last_log = t0
        for p in range(merkle.N_PARTITIONS):
            items = self._partition_items(p)
            final = p == merkle.N_PARTITIONS - 1

            def write(tx: Transaction, p: int = p, items: list[tuple[bytes, bytes]] = items,
                      final: bool = final) -> None:
                merkle.build(merkle.TxNodeStore(tx, self.tree), p, items)
                if final:
                    tx.insert(STATE_TREE, self.table.encode(), FORMAT)
            self.db.transaction(write)
            done += len(items)
            now = time.monotonic()
            if now - last_log >= 5:
                last_log = now
                log.info("merkle rebuild of %s: %d/%d entries, partition %d/256",
                         self.table, done, total, p + 1)
        info("merkle rebuild of %s: done, %d entries in %.1f s", self.table, done,
             time.monotonic() - t0)

    def _clear(self, tree: str) -> None:
        while True:
            rows = self.db.range(tree, None, None, _PAGE)
            if not rows:
                return

            def rm(tx: Transaction, rows: list[tuple[bytes, bytes]] = rows) -> None:
                for k, _v in rows:
                    tx.remove(tree, k)
            self.db.transaction(rm)

    def _partition_items(self, p: int) -> list[tuple[bytes, bytes]]:
        """(table key, value hash) of every entry of partition p, read a page at a time."""
        out: list[tuple[bytes, bytes]] = []
        lo = bytes([p])
        hi = bytes([p + 1]) if p < 255 else None
        while True:
            rows = self.db.range(self.store, lo, hi, _PAGE)
            out.extend((k, merkle.value_hash(v)) for k, v in rows)
            if len(rows) < _PAGE:
                return out
            lo = rows[-1][0] + b"\x00"

    # -- checking

    def matches_entries(self) -> list[int]:
        """Partitions whose stored tree, with the pending records applied (in memory),
        differs from one built from scratch from the entries (empty when consistent): an
        offline check for tests and repairs."""
        by_partition: dict[int, dict[bytes, bytes]] = {}
        for k, v in self._settled_nodes().nodes.items():
            by_partition.setdefault(k[0], {})[k] = v
        bad = []
        for p in range(merkle.N_PARTITIONS):
            fresh = merkle.DictNodeStore()
            merkle.build(fresh, p, self._partition_items(p))
            if by_partition.get(p, {}) != fresh.nodes:
                bad.append(p)
        return bad

    def settled_root_hashes(self) -> list[bytes]:
        """The roots the tree will have once the records pending now are applied (checks:
        the stored roots lag the entries while records are pending)."""
        settled = self._settled_nodes()
        return [merkle.root_hash(settled, p) for p in range(merkle.N_PARTITIONS)]

    def _settled_nodes(self) -> merkle.DictNodeStore:
        """A copy in memory of the whole stored tree, with the pending records applied."""
        def read(tx: Transaction) -> merkle.DictNodeStore:
            nodes = merkle.DictNodeStore()
            nodes.nodes = dict(tx.range(self.tree))
            merkle.update_many(nodes, _as_updates(tx.range(self.todo)))
            return nodes
        return self.db.read(read)


def _as_updates(rows: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes | None]]:
    """Pending records as merkle updates: an empty record is a removal."""
    return [(k, v or None) for k, v in rows]


class MerkleUpdater:
    """Background worker of a running node: switches its table's tree to deferred updates
    and applies the pending records in batches, a little after writes record them."""

    def __init__(self, tm: TableMerkle):
        self.merkle = tm
        self.name = f"{tm.table} Merkle"
        self._wake = asyncio.Event()
        tm.on_todo = self._wake.set
        tm.deferred = True
        self.applied = 0

    async def work(self) -> WorkerState:
        n = await self.merkle.db.write(self.merkle.apply_todo_tx)
        self.applied += n
        # A full batch: more are waiting. Else wait for records to gather again.
        return WorkerState.BUSY if n >= TODO_BATCH else WorkerState.IDLE

    async def wait_for_work(self) -> None:
        await self._wake.wait()
        self._wake.clear()
        await asyncio.sleep(GATHER_S)

    def status(self) -> dict[str, object]:
        return {"queueLength": self.merkle.pending(),
                "freeform": [f"Merkle records applied: {self.applied}"]}
