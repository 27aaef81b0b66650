"""One table's Merkle tries in the database: the "<table>:merkle" tree, kept in step with the
entries (updated in each entry's own write transaction) and rebuilt once when missing."""

from __future__ import annotations

import logging
import time

from ..db.base import Db, Transaction
from . import merkle

log = logging.getLogger(__name__)

STATE_TREE = "merkle:state"  # table name -> format of its complete Merkle tree
FORMAT = b"1"
_PAGE = 1000


class TableMerkle:
    def __init__(self, db: Db, table: str, store: str):
        self.db = db
        self.table = table
        self.store = store  # the entries' tree
        self.tree = f"{table}:merkle"
        db.open_tree(self.tree)
        db.open_tree(STATE_TREE)

    def update_tx(self, tx: Transaction, key: bytes, encoded: bytes | None) -> None:
        """The entry at `key` is now stored as `encoded` (None: removed)."""
        vhash = None if encoded is None else merkle.value_hash(encoded)
        merkle.update(merkle.TxNodeStore(tx, self.tree), key, vhash)

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
        Merkle trees, or a rebuild interrupted by a crash); True if it did."""
        if self.is_complete():
            return False
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
        self._clear()
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

    def _clear(self) -> None:
        while True:
            rows = self.db.range(self.tree, None, None, _PAGE)
            if not rows:
                return

            def rm(tx: Transaction, rows: list[tuple[bytes, bytes]] = rows) -> None:
                for k, _v in rows:
                    tx.remove(self.tree, k)
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
        """Partitions whose stored tree differs from one built from scratch from the
        entries (empty when consistent): an offline check for tests and repairs."""
        bad = []
        for p in range(merkle.N_PARTITIONS):
            fresh = merkle.DictNodeStore()
            merkle.build(fresh, p, self._partition_items(p))
            lo = bytes([p])
            hi = bytes([p + 1]) if p < 255 else None
            stored = dict(self.db.range(self.tree, lo, hi))
            if stored != fresh.nodes:
                bad.append(p)
        return bad
