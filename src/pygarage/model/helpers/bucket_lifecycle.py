"""Creating and deleting a bucket, each as one transaction of the local db.

Why: both are check-then-act. Two CreateBucket of one name must not both win (one bucket
would be left without a name), and a DeleteBucket must not answer 204 while a PutObject of
the same moment answers 200 (a live object in a deleted bucket, its blocks referenced
forever). The db runs one write transaction at a time (every write runs in the db's
writer thread, each in a nested transaction of its own), so a check and the write it
guards, done in one transaction, cannot be separated by another writer:

- create: the name is checked free (in the key's namespace and among global aliases) and
  claimed, with the new bucket and its permissions, in the same transaction;
- delete: "no object, no upload in progress" is checked and the bucket marked deleted in the
  same transaction (unfinished multipart uploads are aborted in it, as S3 does, and so are
  PutObject uploads a crash interrupted: Garage.puts_in_progress tells them apart);
- object writes (Garage._check_object_write): every write of an object version other than an
  abort checks, in its own transaction, that the bucket is live. A PUT starts with such a
  write (its Uploading version, or its only version for small objects) and a multi-block PUT
  in progress makes the bucket non-empty, so of a PUT and a DeleteBucket racing, whichever
  transaction commits second fails: the PUT with NoSuchBucket or the delete with
  BucketNotEmpty.

Cluster (later): the bucket, key and alias tables are full copies, so every node can still
check locally; what a single transaction gives here then needs two steps: DeleteBucket first
marks the bucket closed on every node (object owners refuse non-abort writes into a closed
bucket), then checks emptiness with quorum reads, then marks it deleted (or reopens it). The
object-write check stays as it is: it is the same rule evaluated on each object owner.
Telling a PutObject under way from one a crash interrupted then needs the uploading node to
refresh a lease on its Uploading version, instead of this process's own list.
"""

from __future__ import annotations

from ...db.base import Transaction
from ...table.data import _next_prefix, tree_key
from ...util.clock import now_msec
from ...util.crdt.lww import lww_update
from ...util.ids import gen_uuid
from ..bucket_table import Bucket
from ..garage import Garage
from ..key_table import BucketAlias, Key
from ..s3.object_table import ABORTED, UPLOADING, Object, ObjectVersion
from .errors import BucketNotEmptyErr, NoSuchBucketErr, NoSuchKeyErr

_SCAN_BATCH = 256


class NameTaken(Exception):
    """The name is in use; bucket_id is what it points to."""

    def __init__(self, bucket_id: bytes):
        super().__init__(bucket_id.hex())
        self.bucket_id = bucket_id


def _global_target(tx: Transaction, g: Garage, name: str) -> bytes | None:
    raw = tx.get(g.bucket_alias_table.data.store, tree_key(name.encode(), b""))
    return BucketAlias.decode(raw).bucket_id() if raw is not None else None


def _key(tx: Transaction, g: Garage, key_id: str) -> Key | None:
    raw = tx.get(g.key_table.data.store, tree_key(key_id.encode(), b""))
    k = Key.decode(raw) if raw is not None else None
    return None if k is None or k.deleted else k


async def create_bucket(g: Garage, global_alias: str | None = None,
                  local: tuple[str, str, tuple[bool, bool, bool]] | None = None,
                  local_shadows_global: bool = False) -> Bucket:
    """A new bucket named by a global alias and/or a key's local alias
    (local = (key id, alias, (read, write, owner))). Raises NameTaken if a name is in use;
    a local alias may hide a global alias of the same name only if local_shadows_global
    (the admin API allows it; S3 CreateBucket does not, as the name would then change
    meaning for this key)."""
    g.bucket_table.check_local_write(b"")  # full copy: the same owners for every key
    g.key_table.check_local_write(b"")
    g.bucket_alias_table.check_local_write(b"")

    def tx_fn(tx: Transaction) -> Bucket:
        now = now_msec()
        b = Bucket(gen_uuid(), created=now)
        key: Key | None = None
        if local is not None:
            key_id, alias, perm = local
            key = _key(tx, g, key_id)
            if key is None:
                raise NoSuchKeyErr(f"access key not found: {key_id}")
            taken = key.local_alias(alias)
            if taken is None and not local_shadows_global:
                taken = _global_target(tx, g, alias)
            if taken is not None:
                raise NameTaken(taken)
            key.local_aliases[alias] = lww_update(key.local_aliases.get(alias), now,
                                                  b.id.hex())
            b.local_aliases[f"{key_id}/{alias}"] = (now, True)
            if any(perm):
                key.authorized_buckets[b.id.hex()] = (now, list(perm))
                b.authorized_keys[key_id] = (now, list(perm))
        if global_alias is not None:
            taken = _global_target(tx, g, global_alias)
            if taken is not None:
                raise NameTaken(taken)
            a = BucketAlias(global_alias)
            old = tx.get(g.bucket_alias_table.data.store, tree_key(global_alias.encode(), b""))
            prev = BucketAlias.decode(old).state if old is not None else None
            a.state = lww_update(prev, now, b.id.hex())
            g.bucket_alias_table.data.update_entry_tx(tx, a)
            b.aliases[global_alias] = (now, True)
        g.bucket_table.data.update_entry_tx(tx, b)
        if key is not None:
            g.key_table.data.update_entry_tx(tx, key)
        return b

    return await g.db.write(tx_fn)


async def delete_bucket(g: Garage, bucket_id: bytes) -> None:
    """Delete an empty bucket: abort its unfinished multipart uploads, drop its names and
    permissions, mark it deleted. Raises BucketNotEmptyErr if it holds an object or a
    PutObject in progress."""
    g.bucket_table.check_local_write(bucket_id)
    g.object_table.check_local_write(bucket_id)
    g.key_table.check_local_write(b"")
    g.bucket_alias_table.check_local_write(b"")

    def tx_fn(tx: Transaction) -> None:
        raw = tx.get(g.bucket_table.data.store, tree_key(bucket_id, b""))
        b = Bucket.decode(raw) if raw is not None else None
        if b is None or b.deleted:
            raise NoSuchBucketErr(f"bucket not found: {bucket_id.hex()}")
        uploads = _check_empty(tx, g, bucket_id)
        now = now_msec()
        for key, v in uploads:
            aborted = ObjectVersion(v.uuid, v.timestamp, ABORTED, multipart=v.multipart)
            g.object_table.data.update_entry_tx(tx, Object(bucket_id, key, [aborted]))
        _drop_names(tx, g, b, now)
        b.deleted = True
        g.bucket_table.data.update_entry_tx(tx, b)

    await g.db.write(tx_fn)


def _check_empty(tx: Transaction, g: Garage, bucket_id: bytes
                 ) -> list[tuple[str, ObjectVersion]]:
    """-> the uploads to abort: unfinished multipart uploads, and PutObject uploads a
    crash left behind (not under way in this process); raises if anything else is live."""
    store = g.object_table.data.store
    ph = tree_key(bucket_id, b"")
    end = _next_prefix(ph)
    uploads: list[tuple[str, ObjectVersion]] = []
    start = ph
    while True:
        rows = tx.range(store, start, end, _SCAN_BATCH)
        for _, raw in rows:
            obj = Object.decode(raw)
            if obj.current() is not None:
                raise BucketNotEmptyErr("the bucket is not empty")
            for v in obj.versions:
                if v.state == UPLOADING:
                    if not v.multipart and v.uuid in g.puts_in_progress:
                        raise BucketNotEmptyErr("the bucket is not empty")
                    uploads.append((obj.key, v))
        if len(rows) < _SCAN_BATCH:
            return uploads
        start = rows[-1][0] + b"\x00"


def _drop_names(tx: Transaction, g: Garage, b: Bucket, now: int) -> None:
    """Remove the bucket's global aliases, and its local aliases and permissions on keys."""
    bh = b.id.hex()
    for alias in b.global_aliases():
        a = BucketAlias(alias)
        raw = tx.get(g.bucket_alias_table.data.store, tree_key(alias.encode(), b""))
        cur = BucketAlias.decode(raw) if raw is not None else None
        if cur is not None and cur.bucket_id() == b.id:
            a.state = lww_update(cur.state, now, None)
            g.bucket_alias_table.data.update_entry_tx(tx, a)
    key_ids = set(b.authorized_keys) | {k for k, _ in b.local_alias_list()}
    for key_id in sorted(key_ids):
        k = _key(tx, g, key_id)
        if k is None:
            continue
        if bh in k.authorized_buckets:
            k.authorized_buckets[bh] = lww_update(k.authorized_buckets[bh], now,
                                                  [False, False, False])
        for alias, (_, target) in list(k.local_aliases.items()):
            if target == bh:
                k.local_aliases[alias] = lww_update(k.local_aliases[alias], now, None)
        g.key_table.data.update_entry_tx(tx, k)

