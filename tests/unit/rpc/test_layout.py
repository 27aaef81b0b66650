"""Layout assignment and staging (pure)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.rpc.layout.history import LayoutHistory
from pygarage.rpc.layout.version import LayoutError, NodeRole, compute_assignment


def _nodes(caps: list[tuple[str, int]]) -> dict[str, NodeRole]:
    return {f"{i:064x}": NodeRole(z, c) for i, (z, c) in enumerate(caps)}


def test_single_node_owns_everything() -> None:
    ring, psize, _ = compute_assignment(_nodes([("dc1", 10**9)]), 1, "maximum")
    assert len(ring) == 256 and all(len(p) == 1 for p in ring)
    assert psize == 10**9 // 256


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(1, 100)), min_size=3,
                max_size=8), st.integers(1, 3))
def test_distinct_nodes_and_zone_spread(caps: list[tuple[str, int]], rf: int) -> None:
    roles = _nodes([(z, c * 10**9) for z, c in caps])
    zones = {z for z, _ in caps}
    ring, _, _ = compute_assignment(roles, rf, "maximum")
    for nodes in ring:
        assert len(set(nodes)) == rf
        assert len({roles[n].zone for n in nodes}) == min(rf, len(zones))


def test_capacity_proportional() -> None:
    roles = _nodes([("a", 1000), ("b", 2000), ("c", 1000)])
    ring, _, _ = compute_assignment(roles, 1, "maximum")
    load = Counter(n for p in ring for n in p)
    ids = sorted(roles)
    assert abs(load[ids[1]] - 128) <= 2 and abs(load[ids[0]] - 64) <= 2


def test_not_enough_nodes() -> None:
    with pytest.raises(LayoutError, match="replication factor"):
        compute_assignment(_nodes([("a", 10)]), 3, "maximum")
    with pytest.raises(LayoutError, match="zone redundancy"):
        compute_assignment(_nodes([("a", 10), ("a", 10), ("a", 10)]), 3, 2)


def test_stage_apply_revert_and_roundtrip() -> None:
    h = LayoutHistory.new(1)
    node = "ab" * 32
    h.stage_role(node, NodeRole("dc1", 10**9, ("t",)))
    with pytest.raises(LayoutError, match="--version 1"):
        h.apply(2)
    h.apply(1)
    assert h.current.version == 1 and h.current.nodes_of(7) == [node]
    h.stage_role(node, None)
    h.revert()
    assert not h.has_staged()
    again = LayoutHistory.from_obj(h.to_obj())
    assert again.to_obj() == h.to_obj()
    with pytest.raises(LayoutError, match="no staged"):
        h.apply(2)
