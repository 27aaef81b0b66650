"""The Merkle trie alone (in memory): canonical shape, removal, equality, diff."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.table import merkle
from pygarage.table.merkle import DictNodeStore, Intermediate, Leaf


def _key(i: int, part: int = 7) -> bytes:
    """A table key of partition `part` (first byte), distinct per i."""
    return bytes([part]) + b"k" * 31 + i.to_bytes(4, "big")


def _vh(i: int, gen: int = 0) -> bytes:
    return merkle.value_hash(f"{i}:{gen}".encode())


def _tree(items: list[tuple[bytes, bytes]]) -> DictNodeStore:
    s = DictNodeStore()
    for k, v in items:
        merkle.update(s, k, v)
    return s


def _built(items: list[tuple[bytes, bytes]], part: int = 7) -> DictNodeStore:
    s = DictNodeStore()
    merkle.build(s, part, items)
    return s


items_st = st.dictionaries(st.integers(0, 5000), st.integers(0, 3), max_size=60)


@settings(max_examples=60, deadline=None)
@given(items_st, st.randoms(use_true_random=False))
def test_any_insertion_order_gives_the_same_tree(d: dict[int, int], rnd: random.Random) -> None:
    items = [(_key(i), _vh(i, g)) for i, g in d.items()]
    a = _tree(items)
    shuffled = items[:]
    rnd.shuffle(shuffled)
    b = _tree(shuffled)
    assert a.nodes == b.nodes  # the whole tree, not only the root
    assert a.nodes == _built(items).nodes  # and it is the canonical one
    assert merkle.root_hash(a, 7) == merkle.root_hash(b, 7)


@settings(max_examples=60, deadline=None)
@given(items_st, st.lists(st.integers(0, 5000), max_size=30), st.randoms(use_true_random=False))
def test_updates_and_removals_end_in_the_tree_of_the_final_set(
        d: dict[int, int], extra: list[int], rnd: random.Random) -> None:
    s = DictNodeStore()
    # Interleave: insert extras, overwrite values, remove extras again.
    ops: list[tuple[bytes, bytes | None]] = [(_key(i), _vh(i, 9)) for i in extra]
    ops += [(_key(i), _vh(i, g)) for i, g in d.items()]
    rnd.shuffle(ops)
    for k, v in ops:
        merkle.update(s, k, v)
    for i in extra:
        if i not in d:
            merkle.update(s, _key(i), None)
    for i, g in d.items():
        merkle.update(s, _key(i), _vh(i, g))
    assert s.nodes == _built([(_key(i), _vh(i, g)) for i, g in d.items()]).nodes


@settings(max_examples=40, deadline=None)
@given(items_st, st.integers(6000, 7000))
def test_insert_then_remove_restores_the_previous_root(d: dict[int, int], new: int) -> None:
    s = _tree([(_key(i), _vh(i, g)) for i, g in d.items()])
    before, root = dict(s.nodes), merkle.root_hash(s, 7)
    merkle.update(s, _key(new), _vh(new))
    assert merkle.root_hash(s, 7) != root
    merkle.update(s, _key(new), None)
    assert merkle.root_hash(s, 7) == root
    assert s.nodes == before


def test_empty_partition_and_noops() -> None:
    s = DictNodeStore()
    assert merkle.root_hash(s, 7) == merkle.EMPTY_HASH
    merkle.update(s, _key(1), None)  # removing what is absent
    assert s.nodes == {}
    merkle.update(s, _key(1), _vh(1))
    assert isinstance(merkle.read_node(s, 7, b""), Leaf)
    snapshot = dict(s.nodes)
    merkle.update(s, _key(2), None)  # absent key beside a leaf
    merkle.update(s, _key(1), _vh(1))  # same value again
    assert s.nodes == snapshot
    merkle.update(s, _key(1), None)
    assert s.nodes == {} and merkle.root_hash(s, 7) == merkle.EMPTY_HASH


@settings(max_examples=60, deadline=None)
@given(items_st, items_st)
def test_equal_contents_iff_equal_roots(a: dict[int, int], b: dict[int, int]) -> None:
    ta = _tree([(_key(i), _vh(i, g)) for i, g in a.items()])
    tb = _tree([(_key(i), _vh(i, g)) for i, g in b.items()])
    assert (merkle.root_hash(ta, 7) == merkle.root_hash(tb, 7)) == (a == b)


@settings(max_examples=60, deadline=None)
@given(items_st, items_st)
def test_diff_finds_exactly_the_differing_keys(a: dict[int, int], b: dict[int, int]) -> None:
    ta = _tree([(_key(i), _vh(i, g)) for i, g in a.items()])
    tb = _tree([(_key(i), _vh(i, g)) for i, g in b.items()])
    expected = sorted(_key(i) for i in a.keys() | b.keys() if a.get(i) != b.get(i))
    assert merkle.diff(merkle.lookup_in(ta, 7), merkle.lookup_in(tb, 7)) == expected
    assert merkle.diff(merkle.lookup_in(tb, 7), merkle.lookup_in(ta, 7)) == expected


def test_diff_visits_only_differing_subtrees() -> None:
    base = [(_key(i), _vh(i)) for i in range(3000)]
    ta, tb = _tree(base), _tree(base)
    merkle.update(tb, _key(5), _vh(5, 1))
    seen: list[bytes] = []

    def look_b(prefix: bytes) -> merkle.Node:
        seen.append(prefix)
        return merkle.read_node(tb, 7, prefix)
    assert merkle.diff(merkle.lookup_in(ta, 7), look_b) == [_key(5)]
    depth = len(merkle.differing_prefixes(merkle.lookup_in(ta, 7), look_b)[0])
    assert len(seen) <= 2 * (depth + 1) + 1  # one path down, not the 3000 leaves


def _keys_sharing_khash_prefix(n: int, shared: int) -> list[bytes]:
    """Keys whose trie paths share their first `shared` digits (found by search)."""
    groups: dict[bytes, list[bytes]] = {}
    i = 0
    while True:
        k = _key(i)
        g = groups.setdefault(merkle.digits(merkle.hash_bytes(k))[:shared], [])
        g.append(k)
        if len(g) == n:
            return g
        i += 1


def test_keys_sharing_a_long_khash_prefix() -> None:
    ks = _keys_sharing_khash_prefix(3, 4)  # 3 keys sharing 4 digits: a chain 4 levels deep
    other = _key(10**6)
    s = DictNodeStore()
    for k in ks + [other]:
        merkle.update(s, k, merkle.value_hash(k))
    assert s.nodes == _built([(k, merkle.value_hash(k)) for k in ks + [other]]).nodes
    kh = merkle.digits(merkle.hash_bytes(ks[0]))
    one_child = merkle.read_node(s, 7, kh[:2])
    # A single-child intermediate: it holds several keys, so it does not collapse.
    assert isinstance(one_child, Intermediate) and len(one_child.children) == 1
    assert isinstance(merkle.read_node(s, 7, kh[:4]), Intermediate)
    assert all(0 <= p < 16 for p, _h in one_child.children)
    # Removing down to one key collapses the chain into a leaf at the top again.
    for k in ks[1:]:
        merkle.update(s, k, None)
    assert s.nodes == _built([(k, merkle.value_hash(k)) for k in (ks[0], other)]).nodes
    merkle.update(s, other, None)
    assert s.nodes == {merkle.node_key(7, b""): merkle.encode_node(
        Leaf(ks[0], merkle.value_hash(ks[0])))}


def test_partitions_are_independent_and_children_listed() -> None:
    s = DictNodeStore()
    for i in range(50):
        merkle.update(s, _key(i, part=1), _vh(i))
    r1 = merkle.root_hash(s, 1)
    for i in range(50):
        merkle.update(s, _key(i, part=2), _vh(i))
    assert merkle.root_hash(s, 1) == r1
    assert merkle.root_hash(s, 2) not in (r1, merkle.EMPTY_HASH)
    assert merkle.root_hash(s, 3) == merkle.EMPTY_HASH
    root = merkle.read_node(s, 1, b"")
    ch = merkle.children(root, b"")
    assert ch and all(merkle.node_hash(merkle.read_node(s, 1, p)) == h for p, h in ch)
    leaf_prefix = next(p for p, _h in ch if isinstance(merkle.read_node(s, 1, p), Leaf))
    assert merkle.children(merkle.read_node(s, 1, leaf_prefix), leaf_prefix) == []


def test_depth_stays_logarithmic() -> None:
    s = _tree([(_key(i), _vh(i)) for i in range(20000)])
    deepest = max(len(k) - 1 for k in s.nodes)
    assert deepest <= 8  # ~log16(20000) = 3.6, plus a few digits shared by some keys


def test_node_encoding_roundtrip_and_corruption() -> None:
    leaf = Leaf(b"\x07abc", b"h" * 32)
    inter = Intermediate(((1, b"a" * 32), (200, b"b" * 32)))
    for n in (leaf, inter):
        assert merkle.decode_node(merkle.encode_node(n)) == n
    assert merkle.decode_node(None) is merkle.EMPTY
    for bad in (b"\x03", b"\x02" + b"x" * 5, b"\x01short"):
        try:
            merkle.decode_node(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


# -- batches (update_many through an OverlayStore) -------------------------------------------

class _CountingStore(DictNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = self.puts = self.deletes = 0

    def get(self, key: bytes) -> bytes | None:
        self.gets += 1
        return super().get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.puts += 1
        super().put(key, value)

    def delete(self, key: bytes) -> None:
        self.deletes += 1
        super().delete(key)


@settings(max_examples=60, deadline=None)
@given(items_st, items_st, st.lists(st.integers(0, 5000), max_size=20),
       st.randoms(use_true_random=False))
def test_a_batch_gives_the_tree_of_one_by_one_updates(
        base: dict[int, int], batch: dict[int, int], gone: list[int],
        rnd: random.Random) -> None:
    """On any existing tree: the same nodes as the updates one at a time, in any order of
    the batch (each key once, as the pending records are), removals of present and absent
    keys included; applying the batch twice changes nothing more."""
    start = [(_key(i), _vh(i, g)) for i, g in base.items()]
    ops: dict[bytes, bytes | None] = {_key(i): _vh(i, g + 5) for i, g in batch.items()}
    ops.update({_key(i): None for i in gone})
    items = list(ops.items())
    one_by_one = _tree(start)
    for k, v in items:
        merkle.update(one_by_one, k, v)
    rnd.shuffle(items)
    batched = _tree(start)
    merkle.update_many(batched, items)
    assert batched.nodes == one_by_one.nodes
    final = {**{k: v for k, v in start}, **ops}
    assert batched.nodes == _built([(k, v) for k, v in final.items() if v is not None]).nodes
    merkle.update_many(batched, items)  # idempotent
    assert batched.nodes == one_by_one.nodes


def test_a_batch_reads_and_writes_each_shared_node_once() -> None:
    """Why batches are cheaper: 200 new keys of one partition write each node they change
    once (its root, once instead of 200 times), and read it once."""
    base = _tree([(_key(i), _vh(i)) for i in range(2000)])
    news = [(_key(i), _vh(i)) for i in range(5000, 5200)]
    one = _CountingStore()
    one.nodes = dict(base.nodes)
    for k, v in news:
        merkle.update(one, k, v)
    many = _CountingStore()
    many.nodes = dict(base.nodes)
    merkle.update_many(many, news)
    assert many.nodes == one.nodes
    changed = {k for k in one.nodes if one.nodes[k] != base.nodes.get(k)}
    assert many.puts == len(changed) and many.deletes == 0  # each changed node written once
    assert one.puts >= 1.8 * many.puts  # 949 against 494
    assert many.gets < one.gets / 2


def test_a_batch_with_the_same_key_twice_keeps_the_last() -> None:
    s = DictNodeStore()
    merkle.update_many(s, [(_key(1), _vh(1, 0)), (_key(2), _vh(2)), (_key(1), _vh(1, 1)),
                           (_key(2), None)])
    assert s.nodes == _built([(_key(1), _vh(1, 1))]).nodes
    merkle.update_many(s, [])  # nothing to do
    assert s.nodes == _built([(_key(1), _vh(1, 1))]).nodes
