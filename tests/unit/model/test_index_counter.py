"""The replicated counter entry (model/index_counter.py): CRDT laws, and the totals (max over
the replicas of a partition, summed over partitions; nodes outside the layout ignored)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.model.index_counter import CounterEntry

SETTINGS = settings(max_examples=400, deadline=None)
BUCKET = b"B" * 32

# Few nodes, slots and timestamps: equal timestamps with different values come up often.
node_values = st.dictionaries(st.sampled_from(["n1", "n2", "n3"]),
                              st.tuples(st.integers(0, 3), st.integers(-2, 5)))
entries = st.builds(CounterEntry, st.just(BUCKET), st.dictionaries(
    st.sampled_from([("objects", 7), ("bytes", 7), ("mpu_parts", 1), ("mpu_parts", 200)]),
    node_values))


def merged(a: CounterEntry, b: CounterEntry) -> CounterEntry:
    out = CounterEntry.decode(a.encode())
    out.merge(CounterEntry.decode(b.encode()))
    return out


@SETTINGS
@given(entries, entries, entries)
def test_merge_is_commutative_associative_idempotent(a: CounterEntry, b: CounterEntry,
                                                     c: CounterEntry) -> None:
    before = (a.encode(), b.encode(), c.encode())
    assert merged(a, b).encode() == merged(b, a).encode()
    assert merged(merged(a, b), c).encode() == merged(a, merged(b, c)).encode()
    assert merged(a, a).encode() == a.encode()
    assert merged(merged(a, b), b).encode() == merged(a, b).encode()
    assert (a.encode(), b.encode(), c.encode()) == before


@SETTINGS
@given(entries)
def test_encode_roundtrip(a: CounterEntry) -> None:
    assert CounterEntry.decode(a.encode()) == a


def test_higher_timestamp_wins_per_node_and_ties_pick_one_winner() -> None:
    a = CounterEntry(BUCKET, {("objects", 7): {"n1": (5, 1), "n2": (9, 4)}})
    b = CounterEntry(BUCKET, {("objects", 7): {"n1": (6, 0), "n2": (9, 3), "n3": (1, 2)}})
    for m in (merged(a, b), merged(b, a)):
        assert m.values[("objects", 7)] == {"n1": (6, 0), "n2": (9, 4), "n3": (1, 2)}
    # An older value never comes back, whatever the order it arrives in.
    assert merged(b, CounterEntry(BUCKET, {("objects", 7): {"n1": (5, 100)}})) == merged(b, b)


def test_total_is_max_over_replicas_not_sum() -> None:
    e = CounterEntry(BUCKET, {("objects", 7): {"n1": (3, 10), "n2": (3, 9), "n3": (4, 10)},
                              ("bytes", 7): {"n1": (3, 500), "n2": (3, 450), "n3": (4, 500)}})
    assert e.totals(lambda p: ["n1", "n2", "n3"]) == {"objects": 10, "bytes": 500}


def test_node_outside_the_partitions_nodes_is_ignored() -> None:
    # n9 left the layout (or never stored partition 7): its stale count no longer matters.
    e = CounterEntry(BUCKET, {("objects", 7): {"n1": (3, 10), "n2": (3, 10), "n9": (9, 99)}})
    assert e.totals(lambda p: ["n1", "n2"]) == {"objects": 10}
    assert e.totals(lambda p: ["n3"]) == {}


def test_slots_of_different_partitions_add_up() -> None:
    # Uploads live in the partitions of their ids: each partition's replicas count their own.
    e = CounterEntry(BUCKET, {("mpu_parts", 1): {"n1": (1, 3), "n2": (1, 3)},
                              ("mpu_parts", 2): {"n2": (1, 5), "n3": (1, 4)},
                              ("mpu_parts", 3): {"n1": (1, 7)}})
    nodes = {1: ["n1", "n2"], 2: ["n2", "n3"], 3: ["n2", "n3"]}
    assert e.totals(lambda p: nodes[p]) == {"mpu_parts": 3 + 5}


def test_tombstone_only_when_every_value_is_zero() -> None:
    assert CounterEntry(BUCKET, {("objects", 7): {"n1": (3, 0), "n2": (4, 0)}}).is_tombstone()
    assert not CounterEntry(BUCKET, {("objects", 7): {"n1": (3, 0), "n2": (4, 1)}}).is_tombstone()
