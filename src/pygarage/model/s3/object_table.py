"""Object table: (bucket id, key) -> the object's versions.

A version is Uploading, Complete (delete marker | inline bytes | first block + metadata) or
Aborted. Merge: union of versions; per version the state only moves forward (Uploading <
Complete < Aborted); then everything older than the newest Complete version is pruned,
except multipart uploads: an upload in progress survives newer writes of its key (it can
still complete, with a new timestamp, and then wins), so every multipart version older than
the cut stays, finished ones reduced to a small Aborted tombstone. The tombstone is what
keeps a late copy of the Uploading state from resurrecting the upload whatever the merge
order; it costs a few dozen bytes per finished multipart upload on the key.
The hook marks pruned or aborted versions deleted in the version table (which frees blocks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...db.base import Transaction
from ...util.codec import pack, packb, unpack

MARKER = b"PGobj1"

UPLOADING, COMPLETE, ABORTED = 0, 1, 2
# kinds of complete data
DELETE_MARKER, INLINE, FIRST_BLOCK = "del", "inline", "block"


@dataclass
class ObjectMeta:
    size: int
    etag: str
    headers: list[tuple[str, str]]
    checksum: tuple[str, str] | None = None  # (algo, base64)
    parts: int = 0  # number of parts for multipart objects, 0 for simple puts
    # Multipart with a checksum algorithm: each part's checksum (base64), for
    # GetObjectAttributes; in part order.
    part_checksums: list[str] | None = None

    def to_obj(self) -> list[Any]:
        o = [self.size, self.etag, [list(h) for h in self.headers],
             list(self.checksum) if self.checksum else None, self.parts]
        return o + [self.part_checksums] if self.part_checksums else o  # usual form unchanged

    @staticmethod
    def from_obj(o: list[Any]) -> ObjectMeta:
        return ObjectMeta(o[0], o[1], [(a, b) for a, b in o[2]],
                          (o[3][0], o[3][1]) if o[3] else None, o[4],
                          list(o[5]) if len(o) > 5 and o[5] else None)


@dataclass
class ObjectVersion:
    uuid: bytes
    timestamp: int
    state: int
    multipart: bool = False
    # Uploading: headers and checksum algorithm chosen at creation.
    upload_headers: list[tuple[str, str]] = field(default_factory=list)
    upload_checksum_algo: str | None = None
    # Complete:
    kind: str | None = None
    meta: ObjectMeta | None = None
    inline: bytes | None = None
    first_block: bytes | None = None
    # Aborted after having been Complete somewhere (concurrent Complete and Abort): it still
    # makes every older version obsolete, so pruning never depends on the merge order.
    was_complete: bool = False
    # Multipart Uploading: COMPOSITE or FULL_OBJECT, with upload_checksum_algo.
    upload_checksum_type: str | None = None

    def order(self) -> tuple[int, bytes]:
        return (self.timestamp, self.uuid)

    def is_complete(self) -> bool:
        return self.state == COMPLETE

    def is_data(self) -> bool:
        return self.state == COMPLETE and self.kind != DELETE_MARKER

    def has_blocks(self) -> bool:
        """May this version own blocks (so must be cleaned up in the version table)?"""
        return self.kind == FIRST_BLOCK or self.state != COMPLETE

    def supersedes_older(self) -> bool:
        """Does this version make every older one obsolete (pruned on merge)?"""
        return self.state == COMPLETE or self.was_complete

    def to_obj(self) -> list[Any]:
        o = [self.uuid, self.timestamp, self.state, self.multipart,
             [list(h) for h in self.upload_headers], self.upload_checksum_algo, self.kind,
             self.meta.to_obj() if self.meta else None, self.inline, self.first_block]
        # The usual form stays unchanged: optional fields are only appended when set.
        if self.upload_checksum_type:
            return o + [self.was_complete, self.upload_checksum_type]
        return o + [True] if self.was_complete else o

    @staticmethod
    def from_obj(o: list[Any]) -> ObjectVersion:
        return ObjectVersion(o[0], o[1], o[2], o[3], [(a, b) for a, b in o[4]], o[5], o[6],
                             ObjectMeta.from_obj(o[7]) if o[7] else None, o[8], o[9],
                             len(o) > 10 and bool(o[10]), o[11] if len(o) > 11 else None)

    def merge(self, other: ObjectVersion) -> None:
        was_complete = self.was_complete or other.was_complete or \
            COMPLETE in (self.state, other.state)
        ts = max(self.timestamp, other.timestamp)
        if other.state > self.state:
            self.__dict__.update(other.__dict__)
        elif other.state == self.state == COMPLETE and packb(other.to_obj()) > packb(
                self.to_obj()):
            self.__dict__.update(other.__dict__)
        # A multipart upload completes with a later timestamp than its Uploading state (an
        # abort keeps the earlier one): timestamps only move forward, so does the pruning cut.
        self.timestamp = ts
        if self.state == ABORTED:
            self.was_complete = was_complete

    def tombstone(self) -> ObjectVersion:
        """What remains of a finished multipart version older than the newest Complete."""
        if self.state == UPLOADING:
            return self
        return ObjectVersion(self.uuid, self.timestamp, ABORTED, multipart=True,
                             was_complete=self.supersedes_older())


@dataclass
class Object:
    bucket_id: bytes
    key: str
    versions: list[ObjectVersion]

    def partition_key(self) -> bytes:
        return self.bucket_id

    def sort_key(self) -> bytes:
        return self.key.encode()

    def is_tombstone(self) -> bool:
        """What tombstone GC may drop once every replica has it: a delete marker as the
        newest version, with nothing before it but the Aborted remains of finished
        multipart uploads (Garage: a delete marker alone). An upload in progress or a lone
        aborted upload is not one."""
        if not self.versions:
            return False
        last = self.versions[-1]
        return last.is_complete() and last.kind == DELETE_MARKER and all(
            v.state == ABORTED for v in self.versions[:-1])

    def has_no_data(self) -> bool:
        """Nothing left but delete markers and aborted uploads."""
        return all(v.state == ABORTED or (v.is_complete() and v.kind == DELETE_MARKER)
                   for v in self.versions)

    def encode(self) -> bytes:
        return pack(MARKER, [self.bucket_id, self.key, [v.to_obj() for v in self.versions]])

    @staticmethod
    def decode(data: bytes) -> Object:
        b, k, vs = unpack(MARKER, data)
        return Object(b, k, [ObjectVersion.from_obj(v) for v in vs])

    def merge(self, other: Object) -> None:
        by_id = {v.uuid: v for v in self.versions}
        for v in other.versions:
            mine = by_id.get(v.uuid)
            if mine is None:
                by_id[v.uuid] = ObjectVersion.from_obj(v.to_obj())
            else:
                mine.merge(v)
        versions = sorted(by_id.values(), key=ObjectVersion.order)
        last_complete = max((i for i, v in enumerate(versions) if v.supersedes_older()),
                            default=0)
        self.versions = [v.tombstone() for v in versions[:last_complete] if v.multipart] + \
            versions[last_complete:]

    # -- queries
    def last_complete(self) -> ObjectVersion | None:
        for v in reversed(self.versions):
            if v.is_complete():
                return v
        return None

    def current(self) -> ObjectVersion | None:
        """The visible data version, or None if absent or deleted."""
        v = self.last_complete()
        return v if v is not None and v.is_data() else None

    def newest_timestamp(self, other_than: bytes | None = None) -> int | None:
        return max((v.timestamp for v in self.versions if v.uuid != other_than), default=None)


class ObjectSchema:
    name = "object"

    def __init__(self, on_version_gone: Callable[[Transaction, ObjectVersion, Object], None],
                 on_counters: Callable[[Transaction, Object | None, Object | None], None]):
        self._on_version_gone = on_version_gone
        self._on_counters = on_counters

    def decode(self, data: bytes) -> Object:
        return Object.decode(data)

    def updated(self, tx: Transaction, old: Object | None, new: Object | None) -> None:
        # new None: the entry left this node (tombstone GC, or offload to the partition's
        # new owners), its versions did not end: nothing to propagate.
        if old is not None and new is not None:
            new_by_id = {v.uuid: v for v in new.versions}
            for v in old.versions:
                nv = new_by_id.get(v.uuid)
                gone = nv is None or (nv.state == ABORTED and v.state != ABORTED)
                if gone and v.has_blocks():
                    self._on_version_gone(tx, v, old)
        self._on_counters(tx, old, new)

    def matches_filter(self, entry: Object, filter: Any) -> bool:
        if filter == "data":
            return entry.current() is not None
        if filter == "live":
            return not entry.has_no_data()
        if filter == "uploading":
            return any(v.state == UPLOADING and v.multipart for v in entry.versions)
        if filter == "unfinished":  # multipart and PutObject uploads
            return any(v.state == UPLOADING for v in entry.versions)
        return True
