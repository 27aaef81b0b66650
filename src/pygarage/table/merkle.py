"""Merkle trie of a table's entries, one per partition (pure: nodes go through a NodeStore).

What anti-entropy compares between replicas: equal roots mean equal contents of a partition,
and differing subtrees narrow a sync down to the keys that differ.

Shape (as Garage's): the partition of an entry is the first byte of its table key (the first
byte of hash(partition key), the layout's partition). Inside a partition, entries sit in a
trie over khash = hash(table key), one byte per level. The node at a prefix is canonical,
fixed by the set of keys under it alone, so every insertion order gives the same tree:
  - no key under the prefix: Empty (not stored);
  - one key: Leaf(table key, hash of its stored encoding);
  - two or more: Intermediate(sorted (next byte, child hash) for each non-empty child).
A trie is only as deep as the longest khash prefix two keys share (about log256(n) levels
for n keys in a partition; khash is a 32-byte hash, so at most 32).

Node keys in the store: partition byte + prefix. Node hash: hash of its encoding.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import blake3

from ..db.base import Transaction

HASH_LEN = 32
N_PARTITIONS = 256
_LEAF = 0x01
_INTERMEDIATE = 0x02


def hash_bytes(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


EMPTY_HASH = hash_bytes(b"\x00")  # hash of the empty node (never stored)


@dataclass(frozen=True)
class Leaf:
    key: bytes    # the entry's table key
    vhash: bytes  # hash of the entry's stored encoding


@dataclass(frozen=True)
class Intermediate:
    children: tuple[tuple[int, bytes], ...]  # (next khash byte, child node hash), sorted


class _Empty:
    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()
Node = Leaf | Intermediate | _Empty


def encode_node(node: Node) -> bytes:
    if isinstance(node, Leaf):
        return bytes([_LEAF]) + node.vhash + node.key
    if isinstance(node, Intermediate):
        return bytes([_INTERMEDIATE]) + b"".join(bytes([p]) + h for p, h in node.children)
    raise ValueError("the empty node has no encoding")


def decode_node(raw: bytes | None) -> Node:
    if raw is None:
        return EMPTY
    if raw[0] == _LEAF and len(raw) >= 1 + HASH_LEN:
        return Leaf(raw[1 + HASH_LEN:], raw[1:1 + HASH_LEN])
    step = 1 + HASH_LEN
    if raw[0] == _INTERMEDIATE and (len(raw) - 1) % step == 0:
        return Intermediate(tuple((raw[i], raw[i + 1:i + step])
                                  for i in range(1, len(raw), step)))
    raise ValueError("corrupted Merkle node")


def node_hash(node: Node) -> bytes:
    return EMPTY_HASH if node is EMPTY else hash_bytes(encode_node(node))


def value_hash(encoded_entry: bytes) -> bytes:
    return hash_bytes(encoded_entry)


def partition_of_key(key: bytes) -> int:
    """An entry's partition: the first byte of its table key (= of hash(partition key))."""
    return key[0]


def node_key(partition: int, prefix: bytes) -> bytes:
    return bytes([partition]) + prefix


class NodeStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class TxNodeStore:
    """The nodes of one db tree, inside a write transaction."""

    def __init__(self, tx: Transaction, tree: str):
        self.tx, self.tree = tx, tree

    def get(self, key: bytes) -> bytes | None:
        return self.tx.get(self.tree, key)

    def put(self, key: bytes, value: bytes) -> None:
        self.tx.insert(self.tree, key, value)

    def delete(self, key: bytes) -> None:
        self.tx.remove(self.tree, key)


class DictNodeStore:
    """Nodes in memory (tests, and a tree rebuilt from scratch to compare with)."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.nodes.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.nodes[key] = value

    def delete(self, key: bytes) -> None:
        self.nodes.pop(key, None)


# -- reads ---------------------------------------------------------------------------------

def read_node(store: NodeStore, partition: int, prefix: bytes) -> Node:
    return decode_node(store.get(node_key(partition, prefix)))


def root_hash(store: NodeStore, partition: int) -> bytes:
    return node_hash(read_node(store, partition, b""))


def children(node: Node, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """(child prefix, child hash) of an intermediate node at `prefix`: what a sync compares
    one level down when two nodes' hashes differ. A leaf or the empty node has none."""
    if not isinstance(node, Intermediate):
        return []
    return [(prefix + bytes([p]), h) for p, h in node.children]


# -- writes --------------------------------------------------------------------------------

def update(store: NodeStore, key: bytes, vhash: bytes | None) -> None:
    """Set (vhash) or remove (None) the leaf of table key `key`, re-hashing its path."""
    _update(store, partition_of_key(key), b"", key, hash_bytes(key), vhash)


def _put(store: NodeStore, partition: int, prefix: bytes, node: Node) -> bytes:
    k = node_key(partition, prefix)
    if node is EMPTY:
        store.delete(k)
        return EMPTY_HASH
    raw = encode_node(node)
    store.put(k, raw)
    return hash_bytes(raw)


_REC = 1 + HASH_LEN  # one child in an intermediate's encoding: position byte + hash


def _with_child(raw: bytes, pos: int, h: bytes) -> bytes:
    """An intermediate's encoding with child `pos` set to h (removed if h is EMPTY_HASH).
    Works on the bytes: a root with 256 children is rewritten on every update under it."""
    positions = raw[1::_REC]  # sorted
    i = bisect.bisect_left(positions, pos)
    off = 1 + _REC * i
    present = i < len(positions) and positions[i] == pos
    tail = raw[off + _REC:] if present else raw[off:]
    rec = b"" if h == EMPTY_HASH else bytes([pos]) + h
    return raw[:off] + rec + tail


def _update(store: NodeStore, partition: int, prefix: bytes, key: bytes, khash: bytes,
            vhash: bytes | None) -> bytes | None:
    """The node's new hash, or None when the update leaves it unchanged."""
    depth = len(prefix)
    nk = node_key(partition, prefix)
    raw = store.get(nk)
    if raw is None:
        if vhash is None:
            return None
        return _put(store, partition, prefix, Leaf(key, vhash))
    if raw[0] == _LEAF:
        node = decode_node(raw)
        assert isinstance(node, Leaf)
        if node.key == key:
            if node.vhash == vhash:
                return None
            return _put(store, partition, prefix, EMPTY if vhash is None else Leaf(key, vhash))
        if vhash is None:
            return None  # removing a key that is not here
        if depth >= HASH_LEN:
            raise ValueError("Merkle trie: two keys with the same hash")
        # Two keys now: push the other leaf one level down, then insert ours beside it (or
        # further down, when the next byte is shared too).
        other = hash_bytes(node.key)[depth]
        other_hash = _put(store, partition, prefix + bytes([other]), node)
        ours = khash[depth]
        sub = _update(store, partition, prefix + bytes([ours]), key, khash, vhash)
        assert sub is not None
        ch = {other: other_hash, ours: sub}
        return _put(store, partition, prefix, Intermediate(tuple(sorted(ch.items()))))
    if raw[0] != _INTERMEDIATE or (len(raw) - 1) % _REC:
        raise ValueError("corrupted Merkle node")
    pos = khash[depth]
    sub = _update(store, partition, prefix + bytes([pos]), key, khash, vhash)
    if sub is None:
        return None
    raw = _with_child(raw, pos, sub)
    n = (len(raw) - 1) // _REC
    if n == 0:
        return _put(store, partition, prefix, EMPTY)
    if n == 1:
        # One child left: if it holds a single key, that leaf moves up here (canonical shape);
        # a child holding several keys stays an intermediate below us.
        only = prefix + raw[1:2]
        child = read_node(store, partition, only)
        if isinstance(child, Leaf):
            store.delete(node_key(partition, only))
            return _put(store, partition, prefix, child)
    store.put(nk, raw)
    return hash_bytes(raw)


# -- build from scratch --------------------------------------------------------------------

def build(store: NodeStore, partition: int, items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Write the trie of one partition's (table key, value hash) items at once into an empty
    store (used by rebuilds, and by tests as an oracle independent of `update`); the root."""
    rows = sorted((hash_bytes(k), k, v) for k, v in items)
    return _build(store, partition, b"", rows)


def _build(store: NodeStore, partition: int, prefix: bytes,
           rows: list[tuple[bytes, bytes, bytes]]) -> bytes:
    if not rows:
        return EMPTY_HASH
    if len(rows) == 1:
        return _put(store, partition, prefix, Leaf(rows[0][1], rows[0][2]))
    depth = len(prefix)
    if depth >= HASH_LEN:
        raise ValueError("Merkle trie: two keys with the same hash")
    ch: list[tuple[int, bytes]] = []
    i = 0
    while i < len(rows):  # rows are sorted by khash: each child's rows are contiguous
        b = rows[i][0][depth]
        j = i
        while j < len(rows) and rows[j][0][depth] == b:
            j += 1
        ch.append((b, _build(store, partition, prefix + bytes([b]), rows[i:j])))
        i = j
    return _put(store, partition, prefix, Intermediate(tuple(ch)))


# -- comparison ----------------------------------------------------------------------------

NodeLookup = Callable[[bytes], Node]  # prefix -> node, within one partition


def leaves(lookup: NodeLookup, prefix: bytes = b"") -> Iterator[Leaf]:
    node = lookup(prefix)
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Intermediate):
        for p, _h in node.children:
            yield from leaves(lookup, prefix + bytes([p]))


def diff(a: NodeLookup, b: NodeLookup, prefix: bytes = b"") -> list[bytes]:
    """Sorted table keys whose entries differ between two tries of a partition (present on
    one side only, or with different value hashes). Descends only into subtrees whose
    hashes differ, as a sync between replicas would."""
    out: set[bytes] = set()
    _diff(a, b, prefix, out)
    return sorted(out)


def differing_prefixes(a: NodeLookup, b: NodeLookup, prefix: bytes = b"") -> list[bytes]:
    """The smallest subtrees (khash prefixes, i.e. key ranges) where the tries differ:
    each is a leaf or the empty node on at least one side."""
    out: list[bytes] = []
    stack = [prefix]
    while stack:
        p = stack.pop()
        na, nb = a(p), b(p)
        if node_hash(na) == node_hash(nb):
            continue
        if isinstance(na, Intermediate) and isinstance(nb, Intermediate):
            ca, cb = dict(na.children), dict(nb.children)
            for pos in sorted(set(ca) | set(cb), reverse=True):
                if ca.get(pos) != cb.get(pos):
                    stack.append(p + bytes([pos]))
        else:
            out.append(p)
    return sorted(out)


def _diff(a: NodeLookup, b: NodeLookup, prefix: bytes, out: set[bytes]) -> None:
    for p in differing_prefixes(a, b, prefix):
        la = {lf.key: lf.vhash for lf in leaves(a, p)}
        lb = {lf.key: lf.vhash for lf in leaves(b, p)}
        out.update(k for k in la.keys() | lb.keys() if la.get(k) != lb.get(k))


def lookup_in(store: NodeStore, partition: int) -> NodeLookup:
    return lambda prefix: read_node(store, partition, prefix)
