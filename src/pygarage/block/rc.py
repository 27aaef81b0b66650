"""Block reference counts, in the metadata db. A block whose count drops to zero is deleted
only after a delay, so a concurrent writer of the same content can take it back."""

from __future__ import annotations

import msgpack

from ..db.base import Db, Transaction

RC_TREE = "block_local_rc"
GC_TREE = "block_gc_todo"  # (deletable_at, hash) -> b"": the blocks to look at, oldest first
GC_DELAY_MS = 10 * 60 * 1000


def _dec(raw: bytes | None) -> tuple[int, int]:
    if raw is None:
        return 0, 0
    count, deletable_at = msgpack.unpackb(raw)
    return int(count), int(deletable_at)


class BlockRc:
    def __init__(self, db: Db, delay_ms: int = GC_DELAY_MS):
        self.db = db
        self.delay_ms = delay_ms
        db.open_tree(RC_TREE)
        db.open_tree(GC_TREE)

    def incref(self, tx: Transaction, h: bytes) -> None:
        count, _ = _dec(tx.get(RC_TREE, h))
        tx.insert(RC_TREE, h, msgpack.packb((count + 1, 0)))

    def decref(self, tx: Transaction, h: bytes, now_ms: int) -> None:
        count, _ = _dec(tx.get(RC_TREE, h))
        if count <= 1:
            at = now_ms + self.delay_ms
            tx.insert(RC_TREE, h, msgpack.packb((0, at)))
            tx.insert(GC_TREE, at.to_bytes(8, "big") + h, b"")
        else:
            tx.insert(RC_TREE, h, msgpack.packb((count - 1, 0)))

    def get(self, h: bytes) -> int:
        return _dec(self.db.get(RC_TREE, h))[0]

    def deletable(self, now_ms: int, limit: int = 1000) -> list[bytes]:
        rows = self.db.range(GC_TREE, None, (now_ms + 1).to_bytes(8, "big"), limit)
        return [k for k, _ in rows]

    def clear_if_deletable(self, tx: Transaction, todo_key: bytes, now_ms: int) -> bool:
        """Given a GC_TREE key: drop the todo, and the rc entry if still unreferenced."""
        tx.remove(GC_TREE, todo_key)
        h = todo_key[8:]
        count, at = _dec(tx.get(RC_TREE, h))
        if count == 0 and at <= now_ms:
            tx.remove(RC_TREE, h)
            return True
        return False

    def count(self) -> int:
        return self.db.tree_len(RC_TREE)
