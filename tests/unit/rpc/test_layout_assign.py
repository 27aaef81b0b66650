"""The flow-based assignment (layout.md §2-§3): golden values, Garage's PRNG, and properties
against a brute-force solver on small P."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.rpc.layout.assign import (
    Assignment,
    Previous,
    _feasible,
    _Network,
    _old_assignment,
    _prepare,
    check_optimal,
    compute_assignment,
    optimal_partition_size,
)
from pygarage.rpc.layout.chacha import StdRng
from pygarage.rpc.layout.graph import FlowGraph, _cycles_of_functional_graph
from pygarage.rpc.layout.version import LayoutError, NodeRole

TB = 10**12


def nid(i: int) -> str:
    return bytes([i] * 32).hex()


def roles_of(caps: list[int], zones: list[str] | str) -> dict[str, NodeRole]:
    return {nid(i): NodeRole(z, c) for i, (c, z) in enumerate(zip(caps, zones, strict=True))}


def prev(a: Assignment) -> Previous:
    return Previous(a.node_id_vec, a.ring, a.partition_size)


def counts(a: Assignment) -> Counter[str]:
    return Counter(a.node_id_vec[i] for i in a.ring)


# ---- PRNG ----------------------------------------------------------------------------------

def test_stdrng_known_answer() -> None:
    seed = bytes([1, 0, 0, 0, 0x17, 0, 0, 0, 0xC8, 1, 0, 0, 0xD2, 0x1E, 0, 0]) + bytes(16)
    assert StdRng(seed).next_u64() == 10719222850664546238


def test_shuffle_is_a_deterministic_permutation() -> None:
    a, b = list(range(100)), list(range(100))
    StdRng(b"\x12" * 32).shuffle(a)
    StdRng(b"\x12" * 32).shuffle(b)
    assert a == b and sorted(a) == list(range(100)) and a != list(range(100))


# ---- golden values ----------------------------------------------------------------------------

def test_garage_test_rs_sequence() -> None:
    """test.rs: s* = 3, 29, 38, 40000 with effective zr 3, 2, 3, 1; step 2 moves 563."""
    a = compute_assignment(roles_of([4000, 1000, 2000], "ABC"), 3, 3)
    assert (a.partition_size, a.zone_redundancy, a.transfers) == (3, 3, None)
    zones = ["A", "B", "C", "C", "C", "B", "G", "H", "I"]
    b = compute_assignment(
        roles_of([4000, 1000, 1000, 3000, 1000, 1000, 2000, 10000, 2000], zones), 3, 2, prev(a))
    assert (b.partition_size, b.zone_redundancy, b.transfers) == (29, 2, 563)
    c = compute_assignment(
        roles_of([4000, 1000, 2000, 7000, 1000, 1000, 2000, 10000, 2000], zones), 3, 3, prev(b))
    assert (c.partition_size, c.zone_redundancy) == (38, 3)
    caps = [4000000, 4000000, 2000000, 7000000, 1000000, 9000000, 2000000, 10000, 2000000]
    d = compute_assignment(roles_of(caps, zones), 3, 1, prev(c))
    assert (d.partition_size, d.zone_redundancy) == (40000, 1)
    for x, caps_x, zr in ((c, [4000, 1000, 2000, 7000, 1000, 1000, 2000, 10000, 2000], 3),
                          (d, caps, 1)):
        check_optimal(roles_of(caps_x, zones), 3, zr, x.partition_size)


def _planets() -> tuple[dict[str, NodeRole], dict[str, str]]:
    ids = {"Mars": "212f", "Mercury": "563e", "Earth": "6814", "Venus": "86f0"}
    spec = {"Mars": ("bru1", 15 * 10**11), "Mercury": ("par1", TB), "Earth": ("lon1", 2 * TB),
            "Venus": ("par1", 2 * TB)}
    roles = {ids[k] + "0" * 60: NodeRole(z, c, (k,)) for k, (z, c) in spec.items()}
    return roles, {ids[k] + "0" * 60: k for k in ids}


def test_real_world_example_maximum_redundancy() -> None:
    roles, name = _planets()
    a = compute_assignment(roles, 3, "maximum")
    assert a.partition_size == 5_859_375_000 and a.zone_redundancy == 3
    assert {name[n]: k for n, k in counts(a).items()} == {
        "Mars": 256, "Earth": 256, "Mercury": 117, "Venus": 139}
    first = [[name[a.node_id_vec[i]] for i in a.ring[p * 3:p * 3 + 3]] for p in range(3)]
    assert first == [["Mars", "Mercury", "Earth"], ["Mars", "Mercury", "Earth"],
                     ["Mars", "Venus", "Earth"]]
    text = "\n".join(a.message)
    assert "Optimal partition size:                     5.9 GB" in text
    assert "Usable capacity / total cluster capacity:   4.5 TB / 6.5 TB (69.2 %)" in text
    assert "Effective capacity (replication factor 3):  1.5 TB" in text
    assert "relax the redundancy constraint" in text
    assert "685.5 GB (68.6%)" in text and "814.5 GB (40.7%)" in text
    assert "256 (256 unique)  3.0 TB    1.5 TB (50.0%)" in text


def test_real_world_example_redundancy_two() -> None:
    roles, name = _planets()
    a = compute_assignment(roles, 3, 2)
    assert a.partition_size == 8_438_818_565
    assert {name[n]: k for n, k in counts(a).items()} == {
        "Mercury": 118, "Venus": 236, "Earth": 237, "Mars": 177}


def test_operations_doc_node_in_full_zone_gets_nothing() -> None:
    roles = roles_of([10**9] * 3, ["dc1", "dc2", "dc3"])
    a = compute_assignment(roles, 3, "maximum")
    roles[nid(3)] = NodeRole("dc1", 10**9)
    b = compute_assignment(roles, 3, "maximum", prev(a))
    assert b.transfers == 0 and counts(b)[nid(3)] == 0


def test_adding_a_fifth_equal_node_moves_few_partitions() -> None:
    """The issue's figure: the greedy assignment moved 204 of 256; the optimum is 48."""
    roles = roles_of([10**12] * 4, ["dc1"] * 4)
    a = compute_assignment(roles, 1, "maximum")
    assert set(counts(a).values()) == {64}
    roles[nid(4)] = NodeRole("dc1", 10**12)
    b = compute_assignment(roles, 1, "maximum", prev(a))
    assert b.transfers == 48
    assert b.transfers <= 60 and counts(b)[nid(4)] == 48


def test_unchanged_roles_move_nothing_and_are_deterministic() -> None:
    zones = ["A", "B", "C", "C", "C", "B", "G", "H", "I"]
    roles = roles_of([4000, 1000, 1000, 3000, 1000, 1000, 2000, 10000, 2000], zones)
    a = compute_assignment(roles, 3, 2)
    assert compute_assignment(roles, 3, 2) == a
    b = compute_assignment(roles, 3, 2, prev(a))
    assert b.transfers == 0  # same node set per partition; order within carries no meaning
    assert all(set(b.ring[i:i + 3]) == set(a.ring[i:i + 3]) for i in range(0, 768, 3))


def test_gateways_hold_no_partitions_and_come_last() -> None:
    roles = roles_of([10**9, 10**9], ["a", "b"])
    roles["00" * 31 + "01"] = NodeRole("gw-only-zone", None)  # sorts between the two
    a = compute_assignment(roles, 2, "maximum")
    assert a.node_id_vec[-1] == "00" * 31 + "01" and a.nongateway_count == 2
    assert a.zone_redundancy == 2  # the gateway's zone does not count (layout.md §1)
    assert set(a.ring) == {0, 1}


@pytest.mark.parametrize(("caps", "zones", "rf", "zr", "message"), [
    ([10], "a", 3, "maximum", "number of nodes with positive capacity (1) is smaller than the "
                              "replication factor (3)"),
    ([10, 10, 10], "aab", 3, 3, "number of zones with non-gateway nodes (2) is smaller than "
                                "the redundancy parameter (3)"),
    ([10, 10, 10], "abc", 2, 3, "must be smaller or equal to the replication factor (2)"),
    ([10, 20, 20, 15], "abcd", 3, "maximum", "impossible to store partitions of size 1"),
    ([], "", 1, "maximum", "smaller than the replication factor (1)"),
])
def test_impossible_layouts_are_refused(caps: list[int], zones: str, rf: int,
                                        zr: str | int, message: str) -> None:
    with pytest.raises(LayoutError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compute_assignment(roles_of(caps, list(zones)), rf, zr)


def test_partition_size_capped_by_single_node_zone_changes_on_previous() -> None:
    roles, _ = _planets()
    a = compute_assignment(roles, 3, "maximum")
    b = compute_assignment(roles, 3, "maximum", prev(a))
    assert b.transfers == 0
    assert "(5.9 GB in previous layout)" in "\n".join(b.message)
    assert "A total of 0 new copies of partitions need to be transferred." in b.message


# ---- properties against a brute-force solver -----------------------------------------------

def brute_force(roles: dict[str, NodeRole], rf: int, zr: str | int, parts: int,
                old: list[set[str]] | None) -> tuple[int, int]:
    """(s*, best kept) by enumeration: every P-tuple of valid rf-node sets."""
    storage = sorted(n for n, r in roles.items() if r.capacity is not None)
    zones = {roles[n].zone for n in storage}
    zr_eff = min(rf, len(zones)) if zr == "maximum" else int(zr)
    patterns = [set(c) for c in itertools.combinations(storage, rf)
                if len({roles[n].zone for n in c}) >= zr_eff]
    caps = {n: roles[n].capacity or 0 for n in storage}
    sizes = sorted({c // k for c in caps.values() for k in range(1, parts + 1)} - {0},
                   reverse=True)
    for s in sizes:
        bound = {n: min(parts, caps[n] // s) for n in storage}
        best = -1
        for combo in itertools.product(patterns, repeat=parts):
            use = Counter(n for pat in combo for n in pat)
            if all(use[n] <= bound[n] for n in use):
                kept = sum(len(pat & old[p]) for p, pat in enumerate(combo)) if old else 0
                best = max(best, kept)
        if best >= 0:
            return s, best
    raise LayoutError("infeasible")


node_st = st.tuples(st.sampled_from("xyz"), st.integers(1, 40))


@settings(max_examples=40, deadline=None)
@given(st.lists(node_st, min_size=1, max_size=4), st.lists(node_st, min_size=1, max_size=4),
       st.integers(1, 3), st.sampled_from(["maximum", 1, 2]), st.integers(2, 3))
def test_matches_brute_force(before: list[tuple[str, int]], after: list[tuple[str, int]],
                             rf: int, zr: str | int, parts: int) -> None:
    r1 = roles_of([c * 7 for _, c in before], [z for z, _ in before])
    r2 = roles_of([c * 7 for _, c in after], [z for z, _ in after])
    try:
        expected_a = brute_force(r1, rf, zr, parts, None)
        a = compute_assignment(r1, rf, zr, partitions=parts)
    except LayoutError:
        return
    assert a.partition_size == expected_a[0]
    old = [{a.node_id_vec[i] for i in a.ring[p * rf:(p + 1) * rf]} for p in range(parts)]
    try:
        expected_size, expected_kept = brute_force(r2, rf, zr, parts, old)
    except LayoutError:
        with pytest.raises(LayoutError):
            compute_assignment(r2, rf, zr, prev(a), partitions=parts)
        return
    b = compute_assignment(r2, rf, zr, prev(a), partitions=parts)
    assert b.partition_size == expected_size
    assert b.transfers == parts * rf - expected_kept


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(1, 50)), min_size=1,
                max_size=8),
       st.integers(1, 4), st.sampled_from(["maximum", 1, 2, 3, 4]), st.integers(4, 16))
def test_properties(nodes: list[tuple[str, int]], rf: int, zr: str | int, parts: int) -> None:
    roles = roles_of([c * 10**9 for _, c in nodes], [z for z, _ in nodes])
    try:
        a = compute_assignment(roles, rf, zr, partitions=parts)
    except LayoutError as e:
        zones = {z for z, _ in nodes}
        zr_eff = min(rf, len(zones)) if zr == "maximum" else int(zr)
        assert len(nodes) < rf or len(zones) < zr_eff or zr_eff > rf, str(e)
        return
    # Validity: rf distinct nodes per partition, zone diversity, capacity respected.
    usage: Counter[int] = Counter()
    for p in range(parts):
        ns = a.ring[p * rf:(p + 1) * rf]
        assert len(set(ns)) == rf
        assert len({roles[a.node_id_vec[i]].zone for i in ns}) >= a.zone_redundancy
        usage.update(ns)
    for i, k in usage.items():
        assert k * a.partition_size <= (roles[a.node_id_vec[i]].capacity or 0)
    # Optimality: one byte more per partition is infeasible (independent full-graph flow).
    pb = _prepare(roles, rf, zr, parts)
    net = _Network(pb, a.partition_size + 1, set())
    assert net.g.max_flow(0, 1, shuffle=False) < parts * rf
    assert _feasible(pb, a.partition_size + 1) is False
    # Determinism, and stability when nothing changes.
    assert compute_assignment(roles, rf, zr, partitions=parts) == a
    assert compute_assignment(roles, rf, zr, prev(a), partitions=parts).transfers == 0
    # More capacity never lowers the partition size; renaming nodes keeps it.
    bigger = dict(roles)
    first = sorted(roles)[0]
    bigger[first] = NodeRole(roles[first].zone, (roles[first].capacity or 0) * 2)
    assert compute_assignment(bigger, rf, zr, partitions=parts).partition_size >= \
        a.partition_size
    renamed = {nid(200 - i): r for i, r in enumerate(roles.values())}
    assert compute_assignment(renamed, rf, zr, partitions=parts).partition_size == \
        a.partition_size


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 30)), min_size=1,
                max_size=6),
       st.integers(1, 3), st.sampled_from(["maximum", 1, 2]), st.integers(4, 12),
       st.integers(1, 40))
def test_quotient_feasibility_equals_full_graph(nodes: list[tuple[str, int]], rf: int,
                                                zr: str | int, parts: int, size: int) -> None:
    roles = roles_of([c * 11 for _, c in nodes], [z for z, _ in nodes])
    try:
        pb = _prepare(roles, rf, zr, parts)
    except LayoutError:
        return
    full = _Network(pb, size, set()).g.max_flow(0, 1, shuffle=False)
    assert (full >= parts * rf) == _feasible(pb, size)


def _reference_negative_cycles(g: FlowGraph, arc_cost: dict[int, int],
                               path_length: int) -> list[list[int]]:
    """Bellman-Ford as layout.md §2.5 states it: every residual edge, path_length + 1 times."""
    n = g.n_vertices
    edges = []
    for u in range(n):
        for e in g.adj[u]:
            if g.cap[e] - g.flow[e] > 0:
                w = arc_cost[e] if e in arc_cost else -arc_cost.get(e ^ 1, 0)
                edges.append((u, g.dest[e], w))
    dist, prev = [0] * n, [-1] * n
    for _ in range(path_length + 1):
        for u, v, w in edges:
            if dist[u] + w < dist[v]:
                dist[v], prev[v] = dist[u] + w, u
    return [c[::-1] for c in _cycles_of_functional_graph(prev)]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(1, 30)), min_size=2, max_size=5),
       st.lists(st.integers(1, 30), min_size=2, max_size=5), st.integers(1, 2))
def test_fast_bellman_ford_equals_the_plain_one(nodes: list[tuple[str, int]],
                                                other_caps: list[int], rf: int) -> None:
    """Skipping vertices whose distance did not drop must not change a single update."""
    parts = 8
    r1 = roles_of([c * 13 for _, c in nodes], [z for z, _ in nodes])
    # The next layout: other capacities, nodes added or removed, zones alternating.
    r2 = roles_of([c * 13 for c in other_caps], ("ab" * 3)[:len(other_caps)])
    try:
        a = compute_assignment(r1, rf, 1, partitions=parts)
        pb = _prepare(r2, rf, 1, parts)
        size = optimal_partition_size(pb)
    except LayoutError:
        return
    old = _old_assignment(pb, prev(a))
    assert old is not None
    net = _Network(pb, size, set())
    net.max_flow()
    cost = {net.arc[(p, n)]: -1 for p in range(parts) for n in old[p]}
    for _ in range(10):
        expected = _reference_negative_cycles(net.g, cost, 4 * len(pb.storage))
        assert net.g._negative_cycles(cost, 4 * len(pb.storage)) == expected
        if not expected:
            break
        for cycle in expected:  # one cancelling pass, as minimize_cost does
            for i, u in enumerate(cycle):
                v = cycle[(i + 1) % len(cycle)]
                e = next(e for e in net.g.adj[u] if net.g.dest[e] == v)
                net.g.flow[e] += 1
                net.g.flow[e ^ 1] -= 1
