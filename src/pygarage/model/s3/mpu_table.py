"""Multipart upload table: upload id -> parts ((part number, timestamp) -> part version).

A part number uploaded twice keeps both entries; the newest timestamp wins when completing.
Part timestamps are max(now, newest of that number + 1), so only concurrent uploads of one part
can share a (number, timestamp): then the greater part version id wins, whatever the order.
Merge: parts map union (fields filled in as they become known); deleted absorbs. On
deletion the hook marks every part's version deleted (-> its blocks are decref'd).
A completed upload's entry keeps the result (ETag, checksum) so a retried Complete gets it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...db.base import Transaction
from ...util.codec import pack, packb, unpack

MARKER = b"PGmpu1"


@dataclass
class MpuPart:
    version: bytes
    etag: str | None = None
    size: int | None = None
    checksum: str | None = None  # base64, algorithm is the upload's

    def merge(self, other: MpuPart) -> None:
        if other.version != self.version:
            # Two uploads of one part in the same millisecond: a deterministic winner, so the
            # merge commutes; its fields are its own, never mixed with the loser's.
            if other.version > self.version:
                self.version, self.etag = other.version, other.etag
                self.size, self.checksum = other.size, other.checksum
            return
        self.etag = self.etag or other.etag
        self.size = self.size if self.size is not None else other.size
        self.checksum = self.checksum or other.checksum


@dataclass
class MultipartUpload:
    upload_id: bytes
    bucket_id: bytes
    key: str
    timestamp: int
    deleted: bool = False
    parts: dict[tuple[int, int], MpuPart] = field(default_factory=dict)
    # Set when completed: [etag, checksum algo or None, checksum or None, version ts].
    completed: list[Any] | None = None

    def partition_key(self) -> bytes:
        return self.upload_id

    def sort_key(self) -> bytes:
        return b""

    def is_tombstone(self) -> bool:
        return self.deleted

    def encode(self) -> bytes:
        parts = [[n, t, p.version, p.etag, p.size, p.checksum]
                 for (n, t), p in sorted(self.parts.items())]
        fields = [self.upload_id, self.bucket_id, self.key, self.timestamp, self.deleted, parts]
        # The usual form stays unchanged: the result is only appended once completed.
        return pack(MARKER, fields + [self.completed] if self.completed else fields)

    @staticmethod
    def decode(data: bytes) -> MultipartUpload:
        u, b, k, ts, d, parts, *rest = unpack(MARKER, data)
        return MultipartUpload(u, b, k, ts, d, {(n, t): MpuPart(v, e, s, c)
                                                for n, t, v, e, s, c in parts},
                               list(rest[0]) if rest and rest[0] else None)

    def merge(self, other: MultipartUpload) -> None:
        if other.completed and (not self.completed
                                or packb(other.completed) > packb(self.completed)):
            self.completed = list(other.completed)
        if other.deleted:
            self.deleted = True
        if self.deleted:
            self.parts = {}
            return
        for k, p in other.parts.items():
            if k in self.parts:
                self.parts[k].merge(p)
            else:
                self.parts[k] = MpuPart(p.version, p.etag, p.size, p.checksum)

    def newest_part_ts(self, number: int) -> int | None:
        return max((t for n, t in self.parts if n == number), default=None)

    def latest_parts(self) -> dict[int, tuple[int, MpuPart]]:
        """part number -> (timestamp, part), newest complete upload of each number."""
        out: dict[int, tuple[int, MpuPart]] = {}
        for (n, t), p in sorted(self.parts.items()):
            if p.etag is not None:
                out[n] = (t, p)
        return out


class MpuSchema:
    name = "multipart_upload"

    def __init__(self, on_part_gone: Callable[[Transaction, bytes], None],
                 on_counters: Callable[[Transaction, MultipartUpload | None,
                                        MultipartUpload | None], None]):
        self._on_part_gone = on_part_gone
        self._on_counters = on_counters

    def decode(self, data: bytes) -> MultipartUpload:
        return MultipartUpload.decode(data)

    def updated(self, tx: Transaction, old: MultipartUpload | None,
                new: MultipartUpload | None) -> None:
        if old is not None and not old.deleted and new is not None and new.deleted:
            for p in old.parts.values():
                self._on_part_gone(tx, p.version)
        self._on_counters(tx, old, new)

    def matches_filter(self, entry: MultipartUpload, filter: Any) -> bool:
        return not entry.deleted
