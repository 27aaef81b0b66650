"""Identifiers and hashes: 32-byte ids, block hashes, key ids."""

from __future__ import annotations

import secrets
import string
from typing import TypeGuard

import blake3

HASH_LEN = 32


def gen_uuid() -> bytes:
    """A random 32-byte id (bucket ids, version ids, upload ids)."""
    return secrets.token_bytes(32)


def block_hash(data: bytes | memoryview) -> bytes:
    """Content address of a block: BLAKE3 is ~6x faster than BLAKE2b here."""
    return blake3.blake3(data).digest()


def partition_hash(key: bytes) -> bytes:
    """Placement hash of a table partition key (same function as blocks, so one ring)."""
    return blake3.blake3(key).digest()


def partition_of(h: bytes) -> int:
    """256 partitions: the first byte of the hash."""
    return h[0]


def block_partition(h: bytes) -> int:
    """A block's partition: the one of its entries in the block_ref table (whose partition
    key is the block's hash). The nodes that store a block are then the ones that hold its
    reference count, so a node that missed a block learns it needs it from the
    references anti-entropy brings it, and fetches it."""
    return partition_of(partition_hash(h))


def gen_key_id() -> str:
    return "GK" + secrets.token_hex(12)


def gen_secret() -> str:
    return secrets.token_hex(32)


def is_key_id(s: str) -> bool:
    return len(s) == 26 and s.startswith("GK") and all(c in "0123456789abcdef" for c in s[2:])


def is_hex(s: object, length: int) -> TypeGuard[str]:
    """Exactly `length` hex digits, either case, nothing else (bytes.fromhex would also skip
    whitespace, and a regex ending in "$" lets a final newline through)."""
    return isinstance(s, str) and len(s) == length and all(c in string.hexdigits for c in s)


def is_node_id(s: object) -> TypeGuard[str]:
    """A node id as the layout and RPC carry it: 64 lowercase hex digits."""
    return isinstance(s, str) and len(s) == 64 and all(c in "0123456789abcdef" for c in s)
