"""Version table: version uuid -> its ordered blocks ((part, offset) -> (hash, size)).

Merge: blocks are a grow-only map until the version is deleted; deleted absorbs everything.
The hook, on deletion, marks every block reference of the version deleted (-> decref).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ...db.base import Transaction
from ...util.codec import pack, packb, unpack

MARKER = b"PGver1"

BlockKey = tuple[int, int]  # (part number, offset within the part)


@dataclass
class VersionBlock:
    hash: bytes
    size: int


@dataclass
class Version:
    uuid: bytes
    deleted: bool = False
    blocks: dict[BlockKey, VersionBlock] = field(default_factory=dict)
    # Backlink: ("object", bucket_id, key) or ("mpu", upload_id)
    backlink: tuple[Any, ...] = ()

    def partition_key(self) -> bytes:
        return self.uuid

    def sort_key(self) -> bytes:
        return b""

    def is_tombstone(self) -> bool:
        return self.deleted

    def encode(self) -> bytes:
        blocks = [[p, o, b.hash, b.size] for (p, o), b in sorted(self.blocks.items())]
        return pack(MARKER, [self.uuid, self.deleted, blocks, list(self.backlink)])

    @staticmethod
    def decode(data: bytes) -> Version:
        u, d, blocks, bl = unpack(MARKER, data)
        return Version(u, d, {(p, o): VersionBlock(h, s) for p, o, h, s in blocks}, tuple(bl))

    @staticmethod
    def raw_is_deleted(data: bytes) -> bool:
        """The deleted flag of an encoded version, without decoding its (many) blocks."""
        u = msgpack.Unpacker(raw=False)
        u.feed(data[len(MARKER):])
        u.read_array_header()
        u.skip()  # uuid
        return bool(u.unpack())

    def merge(self, other: Version) -> None:
        if other.deleted:
            self.deleted = True
        if self.deleted:
            self.blocks = {}
        else:
            for k, b in other.blocks.items():
                self.blocks.setdefault(k, b)
        # The upload id's version is first linked to its upload, then to the object at
        # Complete: the larger (by encoding: the object link) wins in any merge order.
        if other.backlink and (not self.backlink or packb(list(other.backlink))
                               > packb(list(self.backlink))):
            self.backlink = other.backlink

    def sorted_blocks(self) -> list[tuple[BlockKey, VersionBlock]]:
        return sorted(self.blocks.items())


class VersionSchema:
    name = "version"

    def __init__(self, on_block_unused: Callable[[Transaction, bytes, bytes], None]):
        self._on_block_unused = on_block_unused

    def decode(self, data: bytes) -> Version:
        return Version.decode(data)

    def updated(self, tx: Transaction, old: Version | None, new: Version | None) -> None:
        if old is not None and not old.deleted and new is not None and new.deleted:
            for b in old.blocks.values():
                self._on_block_unused(tx, b.hash, old.uuid)

    def matches_filter(self, entry: Version, filter: Any) -> bool:
        return not entry.deleted
