"""Merkle trie of a table's entries, one per partition (pure: nodes go through a NodeStore).

What anti-entropy compares between replicas: equal roots mean equal contents of a partition,
and differing subtrees narrow a sync down to the keys that differ.

Shape: the partition of an entry is the first byte of its table key (the first byte of
hash(partition key), the layout's partition). Inside a partition, entries sit in a trie over
the path of khash = hash(table key), one nibble per level (Garage uses bytes; with nibbles an
intermediate node is at most 16 x 33 bytes instead of 8 KiB, and rewriting the nodes of a
path on every write costs less: see bench/merkle.py). The node at a prefix is canonical,
fixed by the set of keys under it alone, so every insertion order gives the same tree:
  - no key under the prefix: Empty (not stored);
  - one key: Leaf(table key, hash of its stored encoding);
  - two or more: Intermediate(sorted (next nibble, child hash) for each non-empty child).
A trie is only as deep as the longest path prefix two keys share (about log16(n) levels
for n keys in a partition; at most 64 as khash has 32 bytes).

Node keys in the store: partition byte + path prefix (one byte per nibble). Node hash: hash
of its encoding.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import blake3

from ..db.base import Transaction

HASH_LEN = 32
N_PARTITIONS = 256
_LEAF = 0x01
_INTERMEDIATE = 0x02
_LEAF_TAG = bytes([_LEAF])
_LEAF_KEY = 1 + HASH_LEN  # where a leaf's key starts in its encoding


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


MAX_DEPTH = HASH_LEN * 2  # one level per nibble of the key hash


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
        # Bound once: these run a few times per level of every table write.
        self.get: Callable[[bytes], bytes | None] = functools.partial(tx.get, tree)
        self.put: Callable[[bytes, bytes], None] = functools.partial(tx.insert, tree)
        self.delete: Callable[[bytes], None] = functools.partial(tx.remove, tree)


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
    _update(store, key[:1], digits(hash_bytes(key)), 0, key, vhash)


def digits(khash: bytes) -> bytes:
    """A key hash as its path in the trie: one byte per level, each a nibble."""
    return khash.hex().encode().translate(_HEX)


_HEX = bytes.maketrans(b"0123456789abcdef", bytes(range(16)))
_REC = 1 + HASH_LEN  # one child in an intermediate's encoding: position + hash


def _with_child(raw: bytes, pos: int, h: bytes) -> bytes:
    """An intermediate's encoding with child `pos` set to h (removed if h is EMPTY_HASH),
    spliced in place: no decoding of the other children."""
    positions = raw[1::_REC]  # sorted
    i = bisect.bisect_left(positions, pos)
    off = 1 + _REC * i
    present = i < len(positions) and positions[i] == pos
    tail = raw[off + _REC:] if present else raw[off:]
    rec = b"" if h == EMPTY_HASH else bytes([pos]) + h
    return raw[:off] + rec + tail


def _put(store: NodeStore, partition: int, prefix: bytes, node: Leaf | Intermediate) -> bytes:
    return _store(store, node_key(partition, prefix), encode_node(node))


def _store(store: NodeStore, nk: bytes, raw: bytes) -> bytes:
    store.put(nk, raw)
    return hash_bytes(raw)


def _update(store: NodeStore, part: bytes, path: bytes, depth: int, key: bytes,
            vhash: bytes | None) -> bytes | None:
    """The new hash of the node at path[:depth], or None when the update leaves it
    unchanged. Works on the nodes' encodings: this runs in every table write."""
    nk = part + path[:depth]
    raw = store.get(nk)
    if raw is None:
        if vhash is None:
            return None
        return _store(store, nk, _LEAF_TAG + vhash + key)
    tag = raw[0]
    if tag == _LEAF:
        if raw[_LEAF_KEY:] == key:
            if vhash is None:
                store.delete(nk)
                return EMPTY_HASH
            if raw[1:_LEAF_KEY] == vhash:
                return None
            return _store(store, nk, _LEAF_TAG + vhash + key)
        if vhash is None:
            return None  # removing a key that is not here
        if depth >= MAX_DEPTH:
            raise ValueError("Merkle trie: two keys with the same hash")
        # Two keys now: push the other leaf one level down, then insert ours beside it (or
        # further down, when the next digit is shared too).
        other = digits(hash_bytes(raw[_LEAF_KEY:]))[depth]
        ch = {other: _store(store, nk + bytes([other]), raw)}
        sub = _update(store, part, path, depth + 1, key, vhash)
        assert sub is not None
        ch[path[depth]] = sub
        return _store(store, nk, bytes([_INTERMEDIATE]) + b"".join(
            bytes([p]) + h for p, h in sorted(ch.items())))
    if tag != _INTERMEDIATE or (len(raw) - 1) % _REC:
        raise ValueError("corrupted Merkle node")
    pos = path[depth]
    sub = _update(store, part, path, depth + 1, key, vhash)
    if sub is None:
        return None
    raw = _with_child(raw, pos, sub)
    n = (len(raw) - 1) // _REC
    if n == 0:
        store.delete(nk)
        return EMPTY_HASH
    if n == 1:
        # One child left: if it holds a single key, that leaf moves up here (canonical shape);
        # a child holding several keys stays an intermediate below us.
        only = nk + raw[1:2]
        child = store.get(only)
        if child is not None and child[0] == _LEAF:
            store.delete(only)
            return _store(store, nk, child)
    return _store(store, nk, raw)


# -- many updates at once -----------------------------------------------------------------

class OverlayStore:
    """A NodeStore over another that reads each node from it once and writes each changed
    node back once (flush): applied through it, a batch of updates sharing nodes (a
    partition's root and upper levels) costs one read and one write of each shared node,
    not one per update. The db operations, not the hashing, are most of an update's cost."""

    def __init__(self, base: NodeStore):
        self.base = base
        self.nodes: dict[bytes, bytes | None] = {}  # None: deleted (or never there)
        self.dirty: set[bytes] = set()

    def get(self, key: bytes) -> bytes | None:
        try:
            return self.nodes[key]
        except KeyError:
            raw = self.nodes[key] = self.base.get(key)
            return raw

    def put(self, key: bytes, value: bytes) -> None:
        self.nodes[key] = value
        self.dirty.add(key)

    def delete(self, key: bytes) -> None:
        self.nodes[key] = None
        self.dirty.add(key)

    def flush(self) -> None:
        for key in sorted(self.dirty):  # key order: B-tree friendly
            raw = self.nodes[key]
            if raw is None:
                self.base.delete(key)
            else:
                self.base.put(key, raw)
        self.dirty.clear()


def update_many(store: NodeStore, items: Iterable[tuple[bytes, bytes | None]]) -> None:
    """update() for each (table key, value hash or None), the same trie as one by one (the
    trie's shape depends only on the final set of keys), through an OverlayStore."""
    overlay = OverlayStore(store)
    for key, vhash in items:
        update(overlay, key, vhash)
    overlay.flush()


# -- build from scratch --------------------------------------------------------------------

def build(store: NodeStore, partition: int, items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Write the trie of one partition's (table key, value hash) items at once into an empty
    store (used by rebuilds, and by tests as an oracle independent of `update`); the root."""
    rows = sorted((digits(hash_bytes(k)), k, v) for k, v in items)
    return _build(store, partition, b"", rows)


def _build(store: NodeStore, partition: int, prefix: bytes,
           rows: list[tuple[bytes, bytes, bytes]]) -> bytes:
    if not rows:
        return EMPTY_HASH
    if len(rows) == 1:
        return _put(store, partition, prefix, Leaf(rows[0][1], rows[0][2]))
    depth = len(prefix)
    if depth >= MAX_DEPTH:
        raise ValueError("Merkle trie: two keys with the same hash")
    ch: list[tuple[int, bytes]] = []
    i = 0
    while i < len(rows):  # rows are sorted by path: each child's rows are contiguous
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
