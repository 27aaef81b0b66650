"""Bucket table (full copy): bucket id -> parameters, each an LWW register or LWW map.

Permissions are stored on both sides (bucket.authorized_keys and key.authorized_buckets),
as lookups go both ways; helpers/ keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..db.base import Transaction
from ..util.codec import pack, unpack
from ..util.crdt.lww import Lww, LwwMap, lww_map_canonical, lww_map_merge, lww_merge

MARKER = b"PGbkt1"


@dataclass
class Bucket:
    id: bytes
    created: int = 0
    deleted: bool = False
    aliases: LwwMap = field(default_factory=dict)           # global alias -> (ts, bool)
    local_aliases: LwwMap = field(default_factory=dict)     # "GKid/alias" -> (ts, bool)
    authorized_keys: LwwMap = field(default_factory=dict)   # key id -> (ts, [r, w, o])
    # None | {"index", "error", "redirect_all", "routing_rules"} (see api/s3/website.py)
    website: Lww = (0, None)
    cors: Lww = (0, None)       # None | [rule] (see api/s3/cors.py)
    lifecycle: Lww = (0, None)  # None | [LifecycleRule.to_stored()] (model/lifecycle.py)
    quotas: Lww = (0, {"max_size": None, "max_objects": None})  # enforced by api/s3/quotas

    def partition_key(self) -> bytes:
        return self.id

    def sort_key(self) -> bytes:
        return b""

    def is_tombstone(self) -> bool:
        return self.deleted

    def encode(self) -> bytes:
        return pack(MARKER, [self.id, self.created, self.deleted,
                             lww_map_canonical(self.aliases),
                             lww_map_canonical(self.local_aliases),
                             lww_map_canonical(self.authorized_keys), self.website, self.cors,
                             self.lifecycle, self.quotas])

    @staticmethod
    def decode(data: bytes) -> Bucket:
        o = unpack(MARKER, data)
        return Bucket(o[0], o[1], o[2], o[3], o[4], o[5], tuple(o[6]), tuple(o[7]),
                      tuple(o[8]), tuple(o[9]))

    def merge(self, other: Bucket) -> None:
        self.created = max(self.created, other.created)
        self.deleted = self.deleted or other.deleted
        if self.deleted:
            # A deleted bucket keeps only its tombstone.
            self.aliases, self.local_aliases, self.authorized_keys = {}, {}, {}
            self.website = self.cors = self.lifecycle = (0, None)
            self.quotas = (0, {"max_size": None, "max_objects": None})
            return
        self.aliases = lww_map_merge(self.aliases, other.aliases)
        self.local_aliases = lww_map_merge(self.local_aliases, other.local_aliases)
        self.authorized_keys = lww_map_merge(self.authorized_keys, other.authorized_keys)
        self.website = lww_merge(self.website, other.website)
        self.cors = lww_merge(self.cors, other.cors)
        self.lifecycle = lww_merge(self.lifecycle, other.lifecycle)
        self.quotas = lww_merge(self.quotas, other.quotas)

    def global_aliases(self) -> list[str]:
        return sorted(a for a, (_, on) in self.aliases.items() if on)

    def local_alias_list(self) -> list[tuple[str, str]]:
        return sorted(tuple(k.split("/", 1)) for k, (_, on)  # type: ignore[misc]
                      in self.local_aliases.items() if on)

    def permissions(self, key_id: str) -> tuple[bool, bool, bool]:
        p = self.authorized_keys.get(key_id)
        if p is None:
            return (False, False, False)
        r, w, o = p[1]
        return (bool(r), bool(w), bool(o))


class BucketSchema:
    name = "bucket"

    def decode(self, data: bytes) -> Bucket:
        return Bucket.decode(data)

    def updated(self, tx: Transaction, old: Bucket | None, new: Bucket | None) -> None:
        pass

    def matches_filter(self, entry: Bucket, filter: Any) -> bool:
        return not entry.deleted
