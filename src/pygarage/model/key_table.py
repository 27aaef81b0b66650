"""Key table (full copy): access key id -> secret, name, flags, per-bucket permissions and
the key's own bucket aliases (its local namespace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..db.base import Transaction
from ..util.codec import pack, unpack
from ..util.crdt.lww import Lww, LwwMap, lww_map_canonical, lww_map_merge, lww_merge

MARKER = b"PGkey1"


@dataclass
class Key:
    key_id: str
    secret: str
    created: int = 0
    deleted: bool = False
    name: Lww = (0, "")
    allow_create_bucket: Lww = (0, False)
    authorized_buckets: LwwMap = field(default_factory=dict)  # bucket hex -> (ts, [r,w,o])
    local_aliases: LwwMap = field(default_factory=dict)       # alias -> (ts, bucket hex|None)

    def partition_key(self) -> bytes:
        return self.key_id.encode()

    def sort_key(self) -> bytes:
        return b""

    def is_tombstone(self) -> bool:
        return self.deleted

    def encode(self) -> bytes:
        return pack(MARKER, [self.key_id, self.secret, self.created, self.deleted, self.name,
                             self.allow_create_bucket,
                             lww_map_canonical(self.authorized_buckets),
                             lww_map_canonical(self.local_aliases)])

    @staticmethod
    def decode(data: bytes) -> Key:
        o = unpack(MARKER, data)
        return Key(o[0], o[1], o[2], o[3], tuple(o[4]), tuple(o[5]), o[6], o[7])

    def merge(self, other: Key) -> None:
        self.created = max(self.created, other.created)
        self.deleted = self.deleted or other.deleted
        if self.deleted:
            self.secret = ""
            self.name, self.allow_create_bucket = (0, ""), (0, False)
            self.authorized_buckets, self.local_aliases = {}, {}
            return
        # The secret is set once, at creation; two replicas can only disagree if the same key
        # id was created twice concurrently (or one copy lost it): the larger one wins, so
        # every replica keeps the same secret whatever the order of merges.
        self.secret = max(self.secret, other.secret)
        self.name = lww_merge(self.name, other.name)
        self.allow_create_bucket = lww_merge(self.allow_create_bucket,
                                             other.allow_create_bucket)
        self.authorized_buckets = lww_map_merge(self.authorized_buckets,
                                                other.authorized_buckets)
        self.local_aliases = lww_map_merge(self.local_aliases, other.local_aliases)

    def permissions(self, bucket_id: bytes) -> tuple[bool, bool, bool]:
        p = self.authorized_buckets.get(bucket_id.hex())
        if p is None:
            return (False, False, False)
        r, w, o = p[1]
        return (bool(r), bool(w), bool(o))

    def local_alias(self, name: str) -> bytes | None:
        a = self.local_aliases.get(name)
        return bytes.fromhex(a[1]) if a and a[1] else None


class KeySchema:
    name = "key"

    def decode(self, data: bytes) -> Key:
        return Key.decode(data)

    def updated(self, tx: Transaction, old: Key | None, new: Key | None) -> None:
        pass

    def matches_filter(self, entry: Key, filter: Any) -> bool:
        return not entry.deleted


@dataclass
class BucketAlias:
    """Global alias name -> bucket id (or None once removed), last writer wins."""
    name: str
    state: Lww = (0, None)  # (ts, bucket id hex | None)

    def partition_key(self) -> bytes:
        return self.name.encode()

    def sort_key(self) -> bytes:
        return b""

    def is_tombstone(self) -> bool:
        return False

    def encode(self) -> bytes:
        return pack(b"PGalias1", [self.name, self.state])

    @staticmethod
    def decode(data: bytes) -> BucketAlias:
        n, s = unpack(b"PGalias1", data)
        return BucketAlias(n, tuple(s))

    def merge(self, other: BucketAlias) -> None:
        self.state = lww_merge(self.state, other.state)

    def bucket_id(self) -> bytes | None:
        return bytes.fromhex(self.state[1]) if self.state[1] else None


class BucketAliasSchema:
    name = "bucket_alias"

    def decode(self, data: bytes) -> BucketAlias:
        return BucketAlias.decode(data)

    def updated(self, tx: Transaction, old: BucketAlias | None, new: BucketAlias | None) -> None:
        pass

    def matches_filter(self, entry: BucketAlias, filter: Any) -> bool:
        return entry.bucket_id() is not None
