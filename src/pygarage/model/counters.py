"""Per-bucket counters (objects, bytes, unfinished uploads), kept by table hooks.

Each node counts what it stores, in the same transaction as the entry write; a cluster
sums the per-node counts. With one node, the local count is the bucket's count.
"""

from __future__ import annotations

from ..db.base import Db, Transaction
from ..util.codec import packb, unpackb
from .s3.mpu_table import MultipartUpload
from .s3.object_table import UPLOADING, Object

TREE = "bucket_counters"
FIELDS = ("objects", "bytes", "unfinished_uploads", "mpu_parts", "mpu_bytes")


def object_counts(o: Object | None) -> dict[str, int]:
    """What one object entry adds to its bucket's counters (a quota check subtracts it when
    the entry is about to be replaced)."""
    if o is None:
        return {}
    out = {}
    cur = o.current()
    if cur is not None and cur.meta is not None:
        out["objects"] = 1
        out["bytes"] = cur.meta.size
    n_up = sum(1 for v in o.versions if v.state == UPLOADING and v.multipart)
    if n_up:
        out["unfinished_uploads"] = n_up
    return out


def _mpu_counts(m: MultipartUpload | None) -> dict[str, int]:
    if m is None or m.deleted:
        return {}
    parts = m.latest_parts()
    return {"mpu_parts": len(parts), "mpu_bytes": sum(p.size or 0 for _, p in parts.values())}


class BucketCounters:
    def __init__(self, db: Db):
        self.db = db
        db.open_tree(TREE)

    def _apply(self, tx: Transaction, bucket_id: bytes, old: dict[str, int],
               new: dict[str, int]) -> None:
        delta = {f: new.get(f, 0) - old.get(f, 0) for f in FIELDS}
        if not any(delta.values()):
            return
        raw = tx.get(TREE, bucket_id)
        cur = unpackb(raw) if raw else {}
        for f, d in delta.items():
            cur[f] = cur.get(f, 0) + d
        tx.insert(TREE, bucket_id, packb(cur))

    def on_object(self, tx: Transaction, old: Object | None, new: Object | None) -> None:
        bucket = (new or old).bucket_id  # type: ignore[union-attr]
        self._apply(tx, bucket, object_counts(old), object_counts(new))

    def on_mpu(self, tx: Transaction, old: MultipartUpload | None,
               new: MultipartUpload | None) -> None:
        bucket = (new or old).bucket_id  # type: ignore[union-attr]
        self._apply(tx, bucket, _mpu_counts(old), _mpu_counts(new))

    def get(self, bucket_id: bytes) -> dict[str, int]:
        raw = self.db.get(TREE, bucket_id)
        cur = unpackb(raw) if raw else {}
        return {f: int(cur.get(f, 0)) for f in FIELDS}
