"""The pure anti-entropy decisions: which partitions a pass visits, the descent through two
tries (only differing subtrees, only local content sent), quorum per storage set, trackers."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.table import merkle
from pygarage.table.merkle import DictNodeStore
from pygarage.table.sync_plan import (
    SyncPartition,
    SyncTrackers,
    batch_by_size,
    needs_remote,
    partition_synced,
    peers_of,
    plan_full_sync,
    plan_step,
)


def _tree(items: dict[bytes, bytes], p: int = 7) -> DictNodeStore:
    st = DictNodeStore()
    merkle.build(st, p, [(k, merkle.value_hash(v)) for k, v in items.items()])
    return st


def _push(local: DictNodeStore, remote: DictNodeStore, p: int = 7) -> tuple[set[bytes], int]:
    """Run the descent as the sync worker does; -> (keys sent, remote nodes asked for)."""
    lookup_l, lookup_r = merkle.lookup_in(local, p), merkle.lookup_in(remote, p)
    sent: set[bytes] = set()
    asked = 0
    frontier = [b""]
    while frontier:
        nxt = []
        for pre in frontier:
            ln = lookup_l(pre)
            rn = None
            if needs_remote(ln):
                rn = lookup_r(pre)
                asked += 1
            step = plan_step(ln, rn, pre)
            if step.send_key is not None:
                sent.add(step.send_key)
            if step.send_all:
                sent.update(lf.key for lf in merkle.leaves(lookup_l, pre))
            nxt.extend(step.descend)
        frontier = nxt
    return sent, asked


def _key(i: int, p: int = 7) -> bytes:
    return bytes([p]) + i.to_bytes(4, "big")


def test_descent_sends_only_what_differs_and_is_local() -> None:
    rng = random.Random(1)
    base = {_key(i): bytes([rng.randrange(256)]) * 8 for i in range(2000)}
    mine = dict(base)
    theirs = dict(base)
    mine[_key(5)] = b"changed"          # differs
    mine[_key(5000)] = b"only mine"     # missing on theirs
    theirs[_key(6000)] = b"only theirs"  # not ours to send
    del theirs[_key(7)]                 # they lost one
    sent, asked = _push(_tree(mine), _tree(theirs))
    # What differs, plus at most the few neighbours sharing a leaf position (a leaf on
    # one side against an intermediate on the other sends our whole small subtree).
    assert {_key(5), _key(5000), _key(7)} <= sent
    assert _key(6000) not in sent
    assert len(sent) < 20
    assert asked < 60  # a few paths of ~3-4 levels, not the 2000-entry trie
    assert merkle.diff(merkle.lookup_in(_tree(mine), 7), merkle.lookup_in(_tree(theirs), 7))
    # Equal tries: nothing asked beyond the root, nothing sent.
    assert _push(_tree(base), _tree(base))[0] == set()


def test_descent_against_empty_or_leaf_sends_everything_local() -> None:
    mine = {_key(i): b"v" for i in range(50)}
    sent, asked = _push(_tree(mine), DictNodeStore())
    assert sent == set(mine) and asked == 1
    sent, _ = _push(_tree(mine), _tree({_key(1): b"v"}))
    assert sent == set(mine)
    assert _push(DictNodeStore(), _tree(mine)) == (set(), 0)


def test_plan_step_cases() -> None:
    leaf = merkle.Leaf(b"k", b"h" * 32)
    inter = merkle.Intermediate(((1, b"a" * 32), (2, b"b" * 32)))
    assert plan_step(merkle.EMPTY, None, b"").descend == ()
    assert plan_step(leaf, None, b"").send_key == b"k"
    assert plan_step(inter, merkle.EMPTY, b"\x03").send_all
    other = merkle.Intermediate(((1, b"a" * 32), (2, b"c" * 32), (9, b"d" * 32)))
    assert plan_step(inter, other, b"\x03").descend == (b"\x03\x02",)


def test_plan_full_sync_retain_and_offload() -> None:
    sets = {0: [["a", "b"]], 1: [["b", "c"]], 2: [["b", "c"], ["a", "c"]], 3: []}
    plan = plan_full_sync("a", 4, lambda p: sets.get(p, [["x"]]), lambda p: p == 1,
                          n_partitions=5, rng=random.Random(0))
    by_p = {sp.partition: sp for sp in plan.todo}
    assert set(by_p) == {0, 1, 2}  # 3: no nodes; 4: not ours and no data here
    assert by_p[0].retain and by_p[2].retain and not by_p[1].retain
    assert plan.version == 4 and plan.total == 3 and plan.done == 0
    assert peers_of("a", by_p[2]) == ["b", "c"]


def test_partition_synced_needs_quorum_in_every_set() -> None:
    sp = SyncPartition(0, (("a", "b", "c"), ("a", "d", "e")), True)
    assert not partition_synced(sp, "a", set(), 2)
    assert not partition_synced(sp, "a", {"b"}, 2)
    assert partition_synced(sp, "a", {"b", "e"}, 2)
    # A set without this node needs the quorum from its others.
    sp2 = SyncPartition(0, (("b", "c", "d"),), False)
    assert not partition_synced(sp2, "a", {"b"}, 2)
    assert partition_synced(sp2, "a", {"b", "d"}, 2)
    # A single-node set (rf 1) is satisfied by that node alone.
    assert partition_synced(SyncPartition(0, (("a",),), True), "a", set(), 2)


def test_trackers_are_the_minimum_over_tables() -> None:
    t = SyncTrackers()
    t.add_table("object", 1)
    t.add_table("version", 1)
    assert t.table_done("object", 3) == 1
    assert t.table_done("version", 2) == 2
    assert t.table_done("version", 1) == 2  # never goes back
    assert t.synced_until() == 2


def test_batch_by_size() -> None:
    items = [b"x" * 10] * 5 + [b"y" * 100] + [b"z"]
    assert [len(b) for b in batch_by_size(items, 3, 1000)] == [3, 3, 1]
    assert [len(b) for b in batch_by_size(items, 100, 50)] == [5, 1, 1]
    assert batch_by_size([], 3, 10) == []


def _apply(store: DictNodeStore, values: dict[bytes, bytes], sent: set[bytes],
           src: dict[bytes, bytes], p: int = 7) -> None:
    """The receiver merges what it was sent (here: the larger value wins, a CRDT)."""
    for k in sent:
        new = max(values.get(k, b""), src[k])
        if values.get(k) != new:
            values[k] = new
            merkle.update(store, k, merkle.value_hash(new))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 300), st.binary(min_size=1, max_size=3), max_size=80),
       st.dictionaries(st.integers(0, 300), st.binary(min_size=1, max_size=3), max_size=80))
def test_both_sides_pushing_converge(a_items: dict[int, bytes], b_items: dict[int, bytes]
                                     ) -> None:
    a = {_key(i): v for i, v in a_items.items()}
    b = {_key(i): v for i, v in b_items.items()}
    sa, sb = _tree(a), _tree(b)
    sent_ab, _ = _push(sa, sb)
    sent_ba, _ = _push(sb, sa)
    a0, b0 = dict(a), dict(b)
    _apply(sb, b, sent_ab, a0)
    _apply(sa, a, sent_ba, b0)
    assert a == b
    assert merkle.root_hash(sa, 7) == merkle.root_hash(sb, 7)


def test_roots_of_matches_root_hash(tmp_path: Path) -> None:
    from pygarage.db.open import open_db
    from pygarage.table.merkle_tree import TableMerkle
    db = open_db("lmdb", tmp_path)
    try:
        db.open_tree("t:table")
        tm = TableMerkle(db, "t", "t:table")
        db.transaction(lambda tx: [tm.update_tx(tx, bytes([p % 3]) + bytes([i]), b"v%d" % i)
                                   for i in range(40) for p in range(3)])
        assert tm.roots_of([0, 1, 2, 3]) == [tm.root_hash(p) for p in range(4)]
        assert tm.roots_of([3]) == [merkle.EMPTY_HASH]
    finally:
        db.close()


# ---------------------------------------------------------------- catch-up after a pass

def test_catch_up_retries_a_missed_peer_soon_with_backoff() -> None:
    from pygarage.table.sync_plan import CatchUp
    c = CatchUp(base_s=5, max_s=20)
    up = {"b"}
    c.missed("b", {3, 1, 2}, now=100)
    assert c.next_due(104.9, up.__contains__, 16) is None
    assert c.next_due(105, up.__contains__, 2) == ("b", [1, 2])  # a step's worth
    c.synced("b", {1})
    c.failed_again("b", now=105)  # 2 and 3 still not synced: 10 s, then 20, capped
    assert c.next_due(114, up.__contains__, 16) is None
    assert c.next_due(115, up.__contains__, 16) == ("b", [2, 3])
    c.failed_again("b", now=115)
    c.failed_again("b", now=135)
    assert c.due["b"] == 155
    c.synced("b", {2, 3})
    assert c.behind == {} and c.due == {} and c.delay == {}
    assert c.next_due(1e9, up.__contains__, 16) is None


def test_catch_up_waits_for_a_down_peer_then_goes_at_once() -> None:
    from pygarage.table.sync_plan import CatchUp
    c = CatchUp(base_s=5, max_s=120)
    up: set[str] = set()
    c.missed("a", {7}, now=0)
    for _ in range(5):
        c.failed_again("a", now=0)
    assert c.next_due(1000, up.__contains__, 16) is None  # down: nothing to try
    up.add("a")
    c.came_up("a", now=50)
    assert c.next_due(50, up.__contains__, 16) == ("a", [7])
    assert c.delay["a"] == 5  # backoff reset


def test_catch_up_more_misses_keep_the_earlier_due_time() -> None:
    from pygarage.table.sync_plan import CatchUp
    c = CatchUp(base_s=5)
    c.missed("a", {1}, now=0)
    c.missed("a", {2}, now=4)
    c.missed("a", set(), now=4)
    assert c.due["a"] == 5 and c.behind["a"] == {1, 2}
    c.synced("z", {1})  # unknown peer: nothing
    c.failed_again("z", now=0)
    c.came_up("z", now=0)
    assert "z" not in c.due


def test_catch_up_a_sync_begun_before_a_miss_does_not_clear_it() -> None:
    from pygarage.table.sync_plan import CatchUp
    c = CatchUp(base_s=5)
    c.missed("a", {1, 2}, now=0)
    mark = c.mark()          # a sync reads its roots: both misses are in them
    c.missed("a", {2, 3}, now=1)  # then 2 and 3 miss a write it did not compare
    c.synced("a", {1, 2, 3}, mark)
    assert c.behind["a"] == {2, 3}
    c.synced("a", {2, 3}, c.mark())
    assert c.behind == {} and c.gen_of == {}
    c.missed("b", {4}, now=2)
    c.synced("b", {4})  # no mark: whatever was missed (e.g. no longer ours to sync)
    assert c.behind == {} and c.gen_of == {}
