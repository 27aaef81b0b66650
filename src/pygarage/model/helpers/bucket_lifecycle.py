"""Creating and deleting a bucket: one transaction of the local db when this node alone
holds every table involved, quorum reads and writes in a cluster.

Single node. Both are check-then-act. Two CreateBucket of one name must not both win (one
bucket would be left without a name), and a DeleteBucket must not answer 204 while a
PutObject of the same moment answers 200 (a live object in a deleted bucket, its blocks
referenced forever). The db runs one write transaction at a time (every write runs in the
db's writer thread, each in a nested transaction of its own), so a check and the write it
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

Cluster (Garage's semantics; no consensus, so no cross-node transaction). The bucket, key
and alias tables are full copies on every node: names and keys are checked with local
reads, then the entries are written at their write quorum, in an order that never leaves
a name pointing to nothing: the bucket first, then its global alias, then the key (its
local alias and permissions). Two creations of one name racing on two nodes can both
succeed; the alias is last-writer-wins, so the name then points to one of the buckets and
the other is left without it (as in Garage).
Delete reads the bucket's objects at read quorum, page by page: a current version, or a
PutObject upload that may still be under way (started on this node and not finished, or
on any node less than UPLOAD_GRACE_MS ago: another node's uploads are unknown here) makes
it BucketNotEmpty; unfinished multipart uploads and older PutObject uploads are aborted
(quorum writes); then names and permissions are dropped and the bucket marked deleted.
Each object owner still refuses non-abort writes into a bucket it knows deleted
(Garage._check_object_write, answered as NoSuchBucket to the writer), but a PutObject
whose first write reaches the owners before the deletion does, and completes after the
emptiness check, leaves an object in the deleted bucket: the window Garage has too.
Closing it needs a "closed" state written to every owner before the check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...db.base import Transaction
from ...table.data import _next_prefix, tree_key
from ...table.table import Table
from ...util.clock import now_msec
from ...util.crdt.lww import lww_update
from ...util.ids import gen_uuid
from ..bucket_table import Bucket
from ..garage import Garage
from ..key_table import BucketAlias, Key
from ..s3.object_table import ABORTED, UPLOADING, Object, ObjectVersion
from .errors import BucketNotEmptyErr, NoSuchBucketErr, NoSuchKeyErr

_SCAN_BATCH = 256
# In a cluster, a PutObject upload younger than this may be under way on another node.
UPLOAD_GRACE_MS = 3600_000

# A raw read of (tree, key): the transaction's in the single-node path, the local db's
# (full-copy tables) in a cluster.
Get = Callable[[str, bytes], bytes | None]


class NameTaken(Exception):
    """The name is in use; bucket_id is what it points to."""

    def __init__(self, bucket_id: bytes):
        super().__init__(bucket_id.hex())
        self.bucket_id = bucket_id


def _global_alias(get: Get, g: Garage, name: str) -> BucketAlias | None:
    raw = get(g.bucket_alias_table.data.store, tree_key(name.encode(), b""))
    return BucketAlias.decode(raw) if raw is not None else None


def _global_target(get: Get, g: Garage, name: str) -> bytes | None:
    a = _global_alias(get, g, name)
    return a.bucket_id() if a is not None else None


def _key(get: Get, g: Garage, key_id: str) -> Key | None:
    raw = get(g.key_table.data.store, tree_key(key_id.encode(), b""))
    k = Key.decode(raw) if raw is not None else None
    return None if k is None or k.deleted else k


def _local_only(g: Garage, *pks: tuple[Table[Any], bytes]) -> bool:
    """This node alone holds these entries: a local transaction can check and write."""
    return all(t.owned_locally(pk) for t, pk in pks)


def _new_bucket(get: Get, g: Garage, global_alias: str | None,
                local: tuple[str, str, tuple[bool, bool, bool]] | None,
                local_shadows_global: bool) -> tuple[Bucket, BucketAlias | None, Key | None]:
    """The entries a creation writes: the bucket, its global alias, the key naming it."""
    now = now_msec()
    b = Bucket(gen_uuid(), created=now)
    key: Key | None = None
    if local is not None:
        key_id, alias, perm = local
        key = _key(get, g, key_id)
        if key is None:
            raise NoSuchKeyErr(f"access key not found: {key_id}")
        taken = key.local_alias(alias)
        if taken is None and not local_shadows_global:
            taken = _global_target(get, g, alias)
        if taken is not None:
            raise NameTaken(taken)
        key.local_aliases[alias] = lww_update(key.local_aliases.get(alias), now, b.id.hex())
        b.local_aliases[f"{key_id}/{alias}"] = (now, True)
        if any(perm):
            key.authorized_buckets[b.id.hex()] = (now, list(perm))
            b.authorized_keys[key_id] = (now, list(perm))
    a: BucketAlias | None = None
    if global_alias is not None:
        prev = _global_alias(get, g, global_alias)
        if prev is not None and prev.bucket_id() is not None:
            raise NameTaken(prev.bucket_id())  # type: ignore[arg-type]
        a = BucketAlias(global_alias)
        a.state = lww_update(prev.state if prev is not None else None, now, b.id.hex())
        b.aliases[global_alias] = (now, True)
    return b, a, key


async def create_bucket(g: Garage, global_alias: str | None = None,
                  local: tuple[str, str, tuple[bool, bool, bool]] | None = None,
                  local_shadows_global: bool = False) -> Bucket:
    """A new bucket named by a global alias and/or a key's local alias
    (local = (key id, alias, (read, write, owner))). Raises NameTaken if a name is in use;
    a local alias may hide a global alias of the same name only if local_shadows_global
    (the admin API allows it; S3 CreateBucket does not, as the name would then change
    meaning for this key)."""
    if not _local_only(g, (g.bucket_table, b""), (g.key_table, b""),
                       (g.bucket_alias_table, b"")):
        b, a, key = _new_bucket(g.db.get, g, global_alias, local, local_shadows_global)
        await g.bucket_table.insert(b)  # first: a name never points to a missing bucket
        if a is not None:
            await g.bucket_alias_table.insert(a)
        if key is not None:
            await g.key_table.insert(key)
        return b

    def tx_fn(tx: Transaction) -> Bucket:
        b, a, key = _new_bucket(tx.get, g, global_alias, local, local_shadows_global)
        if a is not None:
            g.bucket_alias_table.data.update_entry_tx(tx, a)
        g.bucket_table.data.update_entry_tx(tx, b)
        if key is not None:
            g.key_table.data.update_entry_tx(tx, key)
        return b

    return await g.db.write(tx_fn)


async def delete_bucket(g: Garage, bucket_id: bytes) -> None:
    """Delete an empty bucket: abort its unfinished multipart uploads, drop its names and
    permissions, mark it deleted. Raises BucketNotEmptyErr if it holds an object or a
    PutObject in progress."""
    if not _local_only(g, (g.bucket_table, bucket_id), (g.object_table, bucket_id),
                       (g.key_table, b""), (g.bucket_alias_table, b"")):
        await _delete_bucket_cluster(g, bucket_id)
        return

    def tx_fn(tx: Transaction) -> None:
        b = _live_bucket(tx.get, g, bucket_id)
        uploads = _check_empty(tx, g, bucket_id)
        now = now_msec()
        for key, v in uploads:
            g.object_table.data.update_entry_tx(tx, _aborted(bucket_id, key, v))
        aliases, keys = _drop_names(tx.get, g, b, now)
        for a in aliases:
            g.bucket_alias_table.data.update_entry_tx(tx, a)
        for k in keys:
            g.key_table.data.update_entry_tx(tx, k)
        b.deleted = True
        g.bucket_table.data.update_entry_tx(tx, b)

    await g.db.write(tx_fn)


def _live_bucket(get: Get, g: Garage, bucket_id: bytes) -> Bucket:
    raw = get(g.bucket_table.data.store, tree_key(bucket_id, b""))
    b = Bucket.decode(raw) if raw is not None else None
    if b is None or b.deleted:
        raise NoSuchBucketErr(f"bucket not found: {bucket_id.hex()}")
    return b


def _aborted(bucket_id: bytes, key: str, v: ObjectVersion) -> Object:
    return Object(bucket_id, key, [ObjectVersion(v.uuid, v.timestamp, ABORTED,
                                                 multipart=v.multipart)])


async def _delete_bucket_cluster(g: Garage, bucket_id: bytes) -> None:
    b = _live_bucket(g.db.get, g, bucket_id)
    uploads: list[tuple[str, ObjectVersion]] = []
    start: bytes | None = None
    now = now_msec()
    while True:
        page = await g.object_table.get_range(bucket_id, start, "live", _SCAN_BATCH)
        for obj in page:
            uploads += _uploads_to_abort(g, obj, now)
        if len(page) < _SCAN_BATCH:
            break
        start = page[-1].sort_key() + b"\x00"
    if uploads:
        await g.object_table.insert_many([_aborted(bucket_id, k, v) for k, v in uploads])
    aliases, keys = _drop_names(g.db.get, g, b, now_msec())
    if aliases:
        await g.bucket_alias_table.insert_many(aliases)
    if keys:
        await g.key_table.insert_many(keys)
    b.deleted = True
    await g.bucket_table.insert(b)


def _uploads_to_abort(g: Garage, obj: Object, now: int | None
                      ) -> list[tuple[str, ObjectVersion]]:
    """Raises BucketNotEmptyErr for a live object or a PutObject under way; -> the uploads
    a deletion aborts. `now` (cluster only): uploads younger than the grace may be under
    way on another node."""
    if obj.current() is not None:
        raise BucketNotEmptyErr("the bucket is not empty")
    out: list[tuple[str, ObjectVersion]] = []
    for v in obj.versions:
        if v.state == UPLOADING:
            if not v.multipart and (v.uuid in g.puts_in_progress or (
                    now is not None and now - v.timestamp < UPLOAD_GRACE_MS)):
                raise BucketNotEmptyErr("the bucket is not empty")
            out.append((obj.key, v))
    return out


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
            uploads += _uploads_to_abort(g, Object.decode(raw), None)
        if len(rows) < _SCAN_BATCH:
            return uploads
        start = rows[-1][0] + b"\x00"


def _drop_names(get: Get, g: Garage, b: Bucket, now: int
                ) -> tuple[list[BucketAlias], list[Key]]:
    """The writes removing the bucket's global aliases, and its local aliases and
    permissions on keys."""
    bh = b.id.hex()
    aliases: list[BucketAlias] = []
    for alias in b.global_aliases():
        cur = _global_alias(get, g, alias)
        if cur is not None and cur.bucket_id() == b.id:
            a = BucketAlias(alias)
            a.state = lww_update(cur.state, now, None)
            aliases.append(a)
    keys: list[Key] = []
    key_ids = set(b.authorized_keys) | {k for k, _ in b.local_alias_list()}
    for key_id in sorted(key_ids):
        k = _key(get, g, key_id)
        if k is None:
            continue
        if bh in k.authorized_buckets:
            k.authorized_buckets[bh] = lww_update(k.authorized_buckets[bh], now,
                                                  [False, False, False])
        for alias, (_, target) in list(k.local_aliases.items()):
            if target == bh:
                k.local_aliases[alias] = lww_update(k.local_aliases[alias], now, None)
        keys.append(k)
    return aliases, keys
