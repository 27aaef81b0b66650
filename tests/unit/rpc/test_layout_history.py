"""Layout history (layout.md §4): staging, apply/revert, trackers, read/write sets, pruning,
skip-dead-nodes, gossip merge laws, and the stored format."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.rpc.layout.history import LayoutHistory, Staging, UpdateTrackers, check_version
from pygarage.rpc.layout.store import load_history, save_history
from pygarage.rpc.layout.version import LayoutError, LayoutVersion, NodeRole
from pygarage.util.codec import pack


@dataclass
class Clock:
    ms: int = 1000

    def now_msec(self) -> int:
        self.ms += 1
        return self.ms


A, B, C, D = ("aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32)
P = 8


def history(rf: int = 1, nodes: tuple[str, ...] = (A, B)) -> tuple[LayoutHistory, Clock]:
    h, clock = LayoutHistory.new(rf, partitions=P), Clock()
    for i, n in enumerate(nodes):
        h.stage_role(n, NodeRole(f"z{i}", 10**9), clock)
    h.apply(1, clock)
    return h, clock


def test_first_apply_drops_the_empty_version_and_resets_staging() -> None:
    h, clock = LayoutHistory.new(1, partitions=P), Clock()
    assert not h.has_staged() and not h.current.ring_ready()
    h.stage_role(A, NodeRole("dc1", 10**9, ("t",)), clock)
    assert h.staged_roles() == {A: NodeRole("dc1", 10**9, ("t",))}
    with pytest.raises(LayoutError, match="Invalid new layout version.*--version 1"):
        h.apply(2, clock)
    message = h.apply(1, clock)
    assert "Optimal partition size" in "\n".join(message)
    assert [v.version for v in h.versions] == [1] and h.old_versions == []
    assert h.current.nodes_of(3) == [A] and not h.has_staged()
    with pytest.raises(LayoutError, match="no staged changes"):
        h.apply(2, clock)


def test_revert_and_parameters() -> None:
    h, clock = history()
    h.stage_role(C, NodeRole("z9", 10**9), clock)
    h.stage_role(A, None, clock)
    h.stage_parameters(1, clock)
    assert h.staged_roles() == {C: NodeRole("z9", 10**9), A: None}
    assert h.staged_zone_redundancy() == 1
    h.revert(clock)
    assert not h.has_staged() and h.staging.roles == {}
    # Staging the value the layout already has is no change.
    h.stage_role(A, NodeRole("z0", 10**9), clock)
    h.stage_parameters("maximum", clock)
    assert not h.has_staged()


def test_transition_sets_trackers_read_version_and_pruning() -> None:
    h, clock = history(nodes=(A, B))
    v1 = h.current
    h.stage_role(C, NodeRole("z2", 10**9), clock)
    h.apply(2, clock)
    assert [v.version for v in h.versions] == [1, 2]
    v2 = h.current
    moved = [p for p in range(P) if v1.nodes_of(p) != v2.nodes_of(p)]
    assert moved, "adding a node moves some partitions"
    p = moved[0]
    assert h.write_sets(p) == [v1.nodes_of(p), v2.nodes_of(p)]
    assert h.storage_nodes_of(p) == sorted(set(v1.nodes_of(p)) | set(v2.nodes_of(p)))
    unmoved = [q for q in range(P) if q not in moved]
    if unmoved:
        assert h.write_sets(unmoved[0]) == [v2.nodes_of(unmoved[0])]
    # Nobody synced v2: reads stay on v1, and v1 stays live.
    for n in (A, B, C):
        h.refresh_local(n, write_quorum=1)
    assert h.read_version(1) == 1 and h.read_nodes_of(p, 1) == v1.nodes_of(p)
    assert [v.version for v in h.versions] == [1, 2]
    assert h.ack_min() == 2
    # Every storage node finished a sync of v2: reads move to v2, then v1 is pruned once
    # every node of v2 reads from v2.
    for n in (A, B, C):
        h.refresh_local(n, write_quorum=1, synced=2)
    assert h.read_version(1) == 2
    for n in (A, B, C):
        h.refresh_local(n, write_quorum=1, synced=2)
    assert [v.version for v in h.versions] == [2]
    assert [v.version for v in h.old_versions] == [1]


def test_read_version_uses_a_write_quorum_of_each_old_set() -> None:
    h, clock = history(rf=3, nodes=(A, B, C))
    h.stage_role(D, NodeRole("z3", 10**9), clock)
    h.apply(2, clock)
    h.clamp_trackers()
    assert h.read_version(2) == 1
    # Two of the three v1 nodes synced v2: a write quorum (2 of 3) of every v1 set did.
    h.trackers.sync.update({A: 2, B: 2})
    assert h.read_version(2) == 2
    # With W = rf every node of the old sets must have synced.
    assert h.read_version(3) == 1


def test_skip_dead_nodes() -> None:
    h, clock = history(nodes=(A, B))
    with pytest.raises(LayoutError, match="only one live cluster layout version"):
        h.skip_dead_nodes(1, {A}, False)
    h.stage_role(C, NodeRole("z2", 10**9), clock)
    h.apply(2, clock)
    with pytest.raises(LayoutError, match="following version numbers: 2"):
        h.skip_dead_nodes(3, {A}, False)
    acked, synced = h.skip_dead_nodes(2, {A, C}, False)
    assert (acked, synced) == ([B], [])
    assert h.trackers.ack[B] == 2 and B not in h.trackers.sync
    acked, synced = h.skip_dead_nodes(2, {A, C}, True)
    assert acked == [A, C] and synced == [A, B, C]
    assert h.read_version(1) == 2


def test_staged_edits_from_two_nodes_merge_per_key() -> None:
    h1, clock = history()
    h2 = h1.copy()
    h1.stage_role(C, NodeRole("z2", 10**9), clock)
    h2.stage_role(D, NodeRole("z3", 10**9), clock)
    h2.stage_role(C, NodeRole("z7", 10**9), clock)  # later: wins over h1's edit of C
    assert h1.merge(h2)
    assert h1.staged_roles() == {C: NodeRole("z7", 10**9), D: NodeRole("z3", 10**9)}
    # After an apply, the reset staging is newer: the old staged entries cannot come back.
    stale = h1.copy()
    h1.apply(2, clock)
    h1.merge(stale)
    assert not h1.has_staged() and h1.current.version == 2


def test_merge_adopts_newer_versions_and_keeps_ours_when_newer() -> None:
    h1, clock = history()
    h2 = h1.copy()
    h2.stage_role(C, NodeRole("z2", 10**9), clock)
    h2.apply(2, clock)
    assert h1.merge(h2)
    assert [v.version for v in h1.versions] == [1, 2] and h1.current == h2.current
    assert not h1.merge(h2)
    old = LayoutHistory.new(1, partitions=P)
    assert not h1.merge(old) and h1.current.version == 2
    assert old.merge(h1) and old.current.version == 2
    assert [v.version for v in old.versions] == [1, 2]


# ---- merge laws ------------------------------------------------------------------------------

def _chain() -> list[LayoutVersion]:
    h, clock = LayoutHistory.new(2, partitions=4), Clock()
    out = [h.current]
    for i, n in enumerate((A, B, C, D)):
        h.stage_role(n, NodeRole(f"z{i % 2}", 10**9 * (i + 1)), clock)
        if i >= 1:
            h.apply(h.current.version + 1, clock)
            out.append(h.current)
    h.stage_parameters(1, clock)
    h.apply(h.current.version + 1, clock)
    out.append(h.current)
    return out  # versions 0..4


CHAIN = _chain()
NODES = [A, B, C, D]
tracker_map = st.dictionaries(st.sampled_from(NODES), st.integers(0, 5), max_size=4)
role_value = st.one_of(st.none(), st.builds(lambda z, c: NodeRole(z, c).to_obj(),
                                            st.sampled_from(["x", "y"]), st.integers(1, 3)))
lww = st.tuples(st.integers(0, 3), role_value)


@st.composite
def histories(draw: st.DrawFn) -> LayoutHistory:
    lo = draw(st.integers(0, 4))
    hi = draw(st.integers(lo, 4))
    old_from = draw(st.integers(0, lo))
    staging = Staging(draw(st.integers(0, 2)),
                      (draw(st.integers(0, 2)), draw(st.sampled_from(["maximum", 1, 2]))),
                      draw(st.dictionaries(st.sampled_from(NODES), lww, max_size=3)))
    trackers = UpdateTrackers(draw(tracker_map), draw(tracker_map), draw(tracker_map))
    # Reachable states only: version 0 has no ring, so it is never kept as an old version.
    return LayoutHistory(CHAIN[lo:hi + 1], CHAIN[max(1, old_from):lo], trackers, staging)


def merged(a: LayoutHistory, b: LayoutHistory) -> LayoutHistory:
    out = a.copy()
    out.merge(b)
    return out


@settings(max_examples=150, deadline=None)
@given(histories(), histories(), histories())
def test_merge_is_commutative_associative_idempotent(a: LayoutHistory, b: LayoutHistory,
                                                      c: LayoutHistory) -> None:
    assert merged(a, b).encode_obj() == merged(b, a).encode_obj()
    assert merged(merged(a, b), c).encode_obj() == merged(a, merged(b, c)).encode_obj()
    assert merged(a, a).encode_obj() == a.encode_obj()
    ab = merged(a, b)
    assert not ab.copy().merge(a) and not ab.copy().merge(b)  # absorbs both inputs
    assert ab.current.version == max(a.current.version, b.current.version)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3), st.integers(0, 3), role_value, role_value)
def test_staging_ties_pick_the_same_winner_everywhere(ts1: int, ts2: int, v1: object,
                                                      v2: object) -> None:
    s1 = Staging(1, (0, "maximum"), {A: (ts1, v1)})
    s2 = Staging(1, (0, "maximum"), {A: (ts2, v2)})
    x, y = Staging(**vars(s1)), Staging(**vars(s2))
    x.merge(s2)
    y.merge(s1)
    assert x.to_obj() == y.to_obj()


# ---- stored format ---------------------------------------------------------------------------

def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    h, clock = history(nodes=(A, B))
    h.stage_role(C, NodeRole("z2", 10**9, ("new",)), clock)
    h.apply(2, clock)
    h.stage_parameters(1, clock)
    h.refresh_local(A, 1)
    path = tmp_path / "cluster_layout"
    save_history(path, h)
    assert os.listdir(tmp_path) == ["cluster_layout"]  # no temp file left behind
    again = load_history(path, 0)
    assert again is not None and again.encode_obj() == h.encode_obj()
    assert load_history(tmp_path / "missing", 0) is None


def test_previous_format_is_migrated(tmp_path: Path) -> None:
    ring = [[A] if p % 2 else [B] for p in range(256)]
    old = {"current": {"version": 3, "rf": 1, "zr": "maximum", "psize": 10**9 // 128,
                       "roles": {A: {"zone": "dc1", "capacity": 10**9, "tags": ["x"]},
                                 B: {"zone": "dc1", "capacity": 10**9, "tags": []},
                                 C: {"zone": "dc2", "capacity": None, "tags": []}},
                       "ring": ring},
           "staged": {D: {"zone": "dc1", "capacity": 10**9, "tags": []}, B: None},
           "staged_zr": None}
    path = tmp_path / "cluster_layout"
    path.write_bytes(pack(b"PGlayout1", old))
    h = load_history(path, 5000)
    assert h is not None
    cur = h.current
    assert cur.version == 3 and cur.node_id_vec == (A, B, C) and cur.nongateway_count == 2
    assert cur.nodes_of(1) == [A] and cur.nodes_of(2) == [B] and cur.gateway_nodes() == [C]
    cur.check()
    assert h.staged_roles() == {D: NodeRole("dc1", 10**9), B: None}
    h.apply(4, Clock(6000))
    assert set(h.current.storage_nodes()) == {A, D}


def test_received_histories_are_checked() -> None:
    h, clock = history(nodes=(A, B))
    good = h.copy()
    good.stage_role(C, NodeRole("z2", 10**9), clock)
    good.apply(2, clock)
    h.check_received(good)
    check_version(good.current)  # second time from the cache
    check_version(good.current)
    # A partition size that is not the optimal one, or a ring breaking an invariant.
    worse = replace(good.current, partition_size=good.current.partition_size - 1)
    with pytest.raises(LayoutError, match="different than optimal"):
        check_version(worse)
    broken = replace(good.current, ring=bytes(len(good.current.ring)))
    bad = good.copy()
    bad.versions[-1] = broken
    with pytest.raises(LayoutError):
        h.check_received(bad)
    other_rf = LayoutHistory.new(3, partitions=P)
    other_rf.versions[0] = replace(other_rf.versions[0], version=1)
    with pytest.raises(LayoutError, match="replication factor 3"):
        h.check_received(other_rf)
