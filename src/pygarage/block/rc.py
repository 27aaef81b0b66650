"""Block reference counts, in the metadata db, changed in the transaction of the block_ref
write that causes them. A block whose count drops to zero stays "needed" for a delay, so a
concurrent writer of the same content can take it back; the resync queue then offloads and
deletes it (resync.py)."""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from ..db.base import Db, Transaction

RC_TREE = "block_local_rc"
GC_DELAY_MS = 10 * 60 * 1000


@dataclass(frozen=True)
class RcEntry:
    """count > 0: referenced. count == 0 and deletable_at: unreferenced since then minus
    the delay. Neither (no db entry): unknown to this node."""
    count: int = 0
    deletable_at: int = 0

    def is_needed(self, now_ms: int) -> bool:
        """Must stay on this node (referenced, or unreferenced for less than the delay)."""
        return self.count > 0 or self.deletable_at > now_ms

    def is_deletable(self, now_ms: int) -> bool:
        return not self.is_needed(now_ms)

    @property
    def absent(self) -> bool:
        return self.count == 0 and self.deletable_at == 0


def decode_rc(raw: bytes | None) -> RcEntry:
    if raw is None:
        return RcEntry()
    count, deletable_at = msgpack.unpackb(raw)
    return RcEntry(int(count), int(deletable_at))


def _enc(e: RcEntry) -> bytes:
    return msgpack.packb((e.count, e.deletable_at))


class BlockRc:
    def __init__(self, db: Db, delay_ms: int = GC_DELAY_MS):
        self.db = db
        self.delay_ms = delay_ms
        db.open_tree(RC_TREE)

    def incref(self, tx: Transaction, h: bytes, now_ms: int) -> bool:
        """-> whether the block was not needed before (it may have to be fetched)."""
        old = decode_rc(tx.get(RC_TREE, h))
        tx.insert(RC_TREE, h, _enc(RcEntry(old.count + 1, 0)))
        return not old.is_needed(now_ms)

    def decref(self, tx: Transaction, h: bytes, now_ms: int) -> int | None:
        """-> when the block becomes deletable, if this drops its last reference."""
        old = decode_rc(tx.get(RC_TREE, h))
        if old.count <= 1:
            at = now_ms + self.delay_ms
            tx.insert(RC_TREE, h, _enc(RcEntry(0, at)))
            return at
        tx.insert(RC_TREE, h, _enc(RcEntry(old.count - 1, 0)))
        return None

    def get_entry(self, h: bytes) -> RcEntry:
        return decode_rc(self.db.get(RC_TREE, h))

    def get(self, h: bytes) -> int:
        return self.get_entry(h).count

    def set_count_tx(self, tx: Transaction, h: bytes, count: int, now_ms: int) -> bool:
        """Recalculated from the block_ref table (repair): keeps a pending delay.
        -> whether the stored count was wrong."""
        old = decode_rc(tx.get(RC_TREE, h))
        if count > 0:
            if old.count == count:
                return False
            tx.insert(RC_TREE, h, _enc(RcEntry(count, 0)))
            return True
        if old.count > 0:
            tx.insert(RC_TREE, h, _enc(RcEntry(0, now_ms + self.delay_ms)))
            return True
        return False

    def clear_if_deletable(self, tx: Transaction, h: bytes, now_ms: int) -> bool:
        """Drop the entry of a block about to be deleted; False (and nothing done) if it
        is needed again."""
        e = decode_rc(tx.get(RC_TREE, h))
        if e.is_needed(now_ms):
            return False
        if not e.absent:
            tx.remove(RC_TREE, h)
        return True

    def count(self) -> int:
        return self.db.tree_len(RC_TREE)

    def all_hashes(self, start: bytes | None, limit: int) -> list[bytes]:
        return [k for k, _ in self.db.range(RC_TREE, start, None, limit)]
