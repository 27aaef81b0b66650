"""The partition assignment of layout.md §2 (pure): the largest partition size any valid
assignment allows, a maximum flow for it kept close to the previous ring, then moves
minimized by cancelling negative cycles. Deterministic: a pure function of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import FlowGraph
from .report import format_size, format_tab_table
from .version import (
    MAX_STORAGE_NODES,
    MAXIMUM,
    N_PARTITIONS,
    LayoutError,
    NodeRole,
    ZoneRedundancy,
    effective_zone_redundancy,
)


@dataclass(frozen=True)
class Previous:
    """The ring being replaced: its node list, its P x rf indexes and partition size."""

    node_id_vec: tuple[str, ...]
    ring: bytes
    partition_size: int


@dataclass(frozen=True)
class Assignment:
    node_id_vec: tuple[str, ...]
    nongateway_count: int
    ring: bytes
    partition_size: int
    zone_redundancy: int  # effective
    transfers: int | None  # copies to move vs the previous ring (None: first layout)
    message: list[str]


@dataclass(frozen=True)
class _Problem:
    storage: list[str]
    gateways: list[str]
    capacity: list[int]
    zone_of: list[int]  # zone index per storage node
    zones: list[str]
    rf: int
    zr: int
    partitions: int


def _prepare(roles: dict[str, NodeRole], rf: int, zr: ZoneRedundancy,
             partitions: int) -> _Problem:
    storage = sorted(n for n, r in roles.items() if r.capacity is not None)
    gateways = sorted(n for n, r in roles.items() if r.capacity is None)
    if len(storage) > MAX_STORAGE_NODES:
        raise LayoutError(f"There are more than {MAX_STORAGE_NODES} non-gateway nodes in the "
                          "new layout. This is not allowed.")
    zones: list[str] = []
    zone_of = []
    for n in storage:
        z = roles[n].zone
        if z not in zones:
            zones.append(z)
        zone_of.append(zones.index(z))
    if zr != MAXIMUM and int(zr) < 1:
        raise LayoutError("The zone redundancy must be at least 1.")
    if zr != MAXIMUM and int(zr) > rf:
        raise LayoutError("The zone redundancy must be smaller or equal to the replication "
                          f"factor ({rf}).")
    zr_eff = effective_zone_redundancy(zr, rf, len(zones))
    if len(storage) < rf:
        raise LayoutError(f"The number of nodes with positive capacity ({len(storage)}) is "
                          f"smaller than the replication factor ({rf}).")
    if len(zones) < zr_eff:
        raise LayoutError(f"The number of zones with non-gateway nodes ({len(zones)}) is "
                          f"smaller than the redundancy parameter ({zr_eff})")
    caps = [int(roles[n].capacity or 0) for n in storage]
    if any(c <= 0 for c in caps):
        raise LayoutError("Invalid capacity value: 0")
    return _Problem(storage, gateways, caps, zone_of, zones, rf, zr_eff, partitions)


# ---- optimal partition size ----------------------------------------------------------------

def _feasible(pb: _Problem, size: int) -> bool:
    """Can P partitions of `size` bytes be placed? Partitions are interchangeable, so the max
    flow of the per-partition graph equals that of its quotient by partition symmetry (the
    LP optimum of a flow network is integral): a graph of Z + N + 4 vertices."""
    z_count, n_count = len(pb.zones), len(pb.storage)
    p = pb.partitions
    src, sink, up, down = 0, 1, 2, 3
    g = FlowGraph(4 + z_count + n_count)
    g.add_edge(src, up, p * pb.zr)
    g.add_edge(src, down, p * (pb.rf - pb.zr))
    for z in range(z_count):
        g.add_edge(up, 4 + z, p)
        g.add_edge(down, 4 + z, p * pb.rf)
    for n in range(n_count):
        g.add_edge(4 + pb.zone_of[n], 4 + z_count + n, p)
        g.add_edge(4 + z_count + n, sink, pb.capacity[n] // size)
    return g.max_flow(src, sink, shuffle=False) >= p * pb.rf


def optimal_partition_size(pb: _Problem) -> int:
    if not _feasible(pb, 1):
        raise LayoutError("The storage capacity of the cluster is too small. It is "
                          "impossible to store partitions of size 1.")
    # s* is the largest feasible size; feasibility only changes where some floor(c_n / s)
    # (capped at P) drops, i.e. just after a value floor(c_n / k) with 1 <= k <= P.
    candidates = sorted({c // k for c in pb.capacity for k in range(1, pb.partitions + 1)}
                        - {0} | {1})
    lo, hi = 0, len(candidates)  # candidates[lo] feasible, candidates[hi:] not
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if _feasible(pb, candidates[mid]):
            lo = mid
        else:
            hi = mid
    return candidates[lo]


# ---- the flow graph G(s) --------------------------------------------------------------------

class _Network:
    """G(s) with Garage's vertex numbering and arc insertion order (layout.md §2.7)."""

    def __init__(self, pb: _Problem, size: int, excluded: set[tuple[int, int]]):
        self.pb = pb
        z_count = len(pb.zones)
        self.stride = 2 + z_count
        self.node_base = 2 + pb.partitions * self.stride
        self.g = FlowGraph(self.node_base + len(pb.storage))
        self.arc: dict[tuple[int, int], int] = {}  # (p, n) -> arc x(p, zone n) -> n
        g = self.g
        for p in range(pb.partitions):
            up = 2 + p * self.stride
            g.add_edge(0, up, pb.zr)
            g.add_edge(0, up + 1, pb.rf - pb.zr)
            for z in range(z_count):
                g.add_edge(up, up + 2 + z, 1)
                g.add_edge(up + 1, up + 2 + z, pb.rf)
        for n in range(len(pb.storage)):
            g.add_edge(self.node_base + n, 1, pb.capacity[n] // size)
            for p in range(pb.partitions):
                if (p, n) not in excluded:
                    self.add_assoc(p, n)

    def x(self, p: int, z: int) -> int:
        return 2 + p * self.stride + 2 + z

    def add_assoc(self, p: int, n: int) -> None:
        self.arc[(p, n)] = self.g.add_edge(self.x(p, self.pb.zone_of[n]), self.node_base + n, 1)

    def max_flow(self) -> int:
        return self.g.max_flow(0, 1)

    def ring(self) -> list[list[int]]:
        """Nodes of each partition: zones in index order, adjacency order within a zone."""
        out = []
        for p in range(self.pb.partitions):
            nodes = []
            for z in range(len(self.pb.zones)):
                nodes += [v - self.node_base for v in self.g.positive_flow_from(self.x(p, z))]
            out.append(nodes)
        return out


def _old_assignment(pb: _Problem, prev: Previous | None) -> list[list[int]] | None:
    """The previous ring in new storage indexes; nodes gone or turned gateways are dropped."""
    if prev is None or not prev.ring:
        return None
    rf = len(prev.ring) // pb.partitions
    if rf * pb.partitions != len(prev.ring):
        raise LayoutError("The old assignment does not have a size corresponding to the "
                          "replication factor or the number of partitions.")
    new_index = {n: i for i, n in enumerate(pb.storage)}
    old = []
    for p in range(pb.partitions):
        ids = (prev.node_id_vec[i] for i in prev.ring[p * rf:(p + 1) * rf])
        old.append([new_index[u] for u in ids if u in new_index])
    return old


def compute_assignment(roles: dict[str, NodeRole], rf: int, zone_redundancy: ZoneRedundancy,
                       previous: Previous | None = None,
                       partitions: int = N_PARTITIONS) -> Assignment:
    """The next ring for these roles (tombstones already dropped). Raises LayoutError."""
    pb = _prepare(roles, rf, zone_redundancy, partitions)
    old = _old_assignment(pb, previous)
    size = optimal_partition_size(pb)
    msg = ["==== COMPUTATION OF A NEW PARTITION ASSIGNATION ====", "",
           f"Partitions are replicated {rf} times on at least {pb.zr} distinct zones.", ""]
    if old is not None and previous is not None:
        msg.append(f"Optimal partition size:                     {format_size(size)} "
                   f"({format_size(previous.partition_size)} in previous layout)")
    else:
        msg.append(f"Optimal partition size:                     {format_size(size)}")
    if size < 100:
        msg.append("WARNING: The partition size is low (< 100), make sure the capacities of "
                   "your nodes are correct and are of at least a few MB")

    n_count = len(pb.storage)
    if old is None:
        net = _Network(pb, size, set())
        value = net.max_flow()
    else:
        # Warm start: a max flow through the old placements only, then through all arcs.
        excluded = {(p, n) for p in range(partitions) for n in range(n_count)
                    if n not in old[p]}
        net = _Network(pb, size, excluded)
        net.max_flow()
        for p, n in sorted(excluded):
            net.add_assoc(p, n)
        value = net.max_flow()
        # Keeping an old placement is worth 1: cancel negative cycles to keep the most.
        cost = {net.arc[(p, n)]: -1 for p in range(partitions) for n in old[p]}
        net.g.minimize_cost(cost, 4 * n_count)
    if value != partitions * rf:
        raise LayoutError(f"internal error: the flow at partition size {size} is {value}, "
                          f"not {partitions * rf}")
    ring_lists = net.ring()
    ring = bytes(i for nodes in ring_lists for i in nodes)
    transfers = None if old is None else sum(
        len(set(nodes) - set(old[p])) for p, nodes in enumerate(ring_lists))
    msg += _statistics(pb, roles, size, ring_lists, old, transfers)
    result = Assignment(tuple(pb.storage + pb.gateways), n_count, ring, size, pb.zr,
                        transfers, msg)
    _check_result(pb, result)
    return result


def _check_result(pb: _Problem, a: Assignment) -> None:
    rf = pb.rf
    problems = []
    if len(a.ring) != pb.partitions * rf:
        problems.append("the ring has the wrong size")
    usage = [0] * len(pb.storage)
    for p in range(pb.partitions):
        nodes = a.ring[p * rf:(p + 1) * rf]
        if len(set(nodes)) != rf:
            problems.append(f"partition {p} does not have {rf} distinct nodes")
        if len({pb.zone_of[n] for n in nodes}) < pb.zr:
            problems.append(f"partition {p} is in fewer than {pb.zr} zones")
        for n in nodes:
            usage[n] += 1
    for n, k in enumerate(usage):
        if k * a.partition_size > pb.capacity[n]:
            problems.append(f"node {pb.storage[n][:16]} is over capacity")
    if problems:
        raise LayoutError("Layout check returned an error: " + "; ".join(problems[:3]) +
                          "\nOriginal result of computation: <<<<\n" + "\n".join(a.message) +
                          "\n>>>>")


def check_optimal(roles: dict[str, NodeRole], rf: int, zone_redundancy: ZoneRedundancy,
                  partition_size: int, partitions: int = N_PARTITIONS) -> None:
    """Garage's check that partition_size is the optimal one for these roles."""
    best = optimal_partition_size(_prepare(roles, rf, zone_redundancy, partitions))
    if best != partition_size:
        raise LayoutError(f"partition_size ({partition_size}) is different than optimal "
                          f"value ({best})")


def _statistics(pb: _Problem, roles: dict[str, NodeRole], size: int,
                ring: list[list[int]], old: list[list[int]] | None,
                transfers: int | None) -> list[str]:
    rf, parts = pb.rf, pb.partitions
    used = size * parts * rf
    total = sum(pb.capacity)
    pct = 100.0 * used / total
    msg = [f"Usable capacity / total cluster capacity:   {format_size(used)} / "
           f"{format_size(total)} ({pct:.1f} %)",
           f"Effective capacity (replication factor {rf}):  {format_size(used // rf)}"]
    if pct < 80.0:
        msg += ["",
                "If the percentage is too low, it might be that the cluster topology and "
                "redundancy constraints are forcing the use of nodes/zones with small storage "
                "capacities.",
                "You might want to move storage capacity between zones or relax the "
                "redundancy constraint.",
                "See the detailed statistics below and look for saturated nodes/zones."]
    stored = [0] * len(pb.storage)
    new = [0] * len(pb.storage)
    unique = [0] * len(pb.zones)
    for p, nodes in enumerate(ring):
        for z in {pb.zone_of[n] for n in nodes}:
            unique[z] += 1
        for n in nodes:
            stored[n] += 1
            if old is None or n not in old[p]:
                new[n] += 1
    msg.append("")
    if transfers is not None:
        msg += [f"A total of {transfers} new copies of partitions need to be transferred.", ""]
    table = []
    for z, zone in enumerate(pb.zones):
        members = [n for n in range(len(pb.storage)) if pb.zone_of[n] == z]
        replicated = sum(stored[n] for n in members)
        zone_cap = sum(pb.capacity[n] for n in members)
        zone_usable = size * replicated
        table.append(f"{zone}\tTags\tPartitions\tCapacity\tUsable capacity")
        for n in members:
            usable = stored[n] * size
            tags = ",".join(roles[pb.storage[n]].tags)
            table.append(f"  {pb.storage[n][:16]}\t[{tags}]\t{stored[n]} ({new[n]} new)\t"
                         f"{format_size(pb.capacity[n])}\t{format_size(usable)} "
                         f"({100.0 * usable / pb.capacity[n]:.1f}%)")
        table.append(f"  TOTAL\t\t{replicated} ({unique[z]} unique)\t{format_size(zone_cap)}\t"
                     f"{format_size(zone_usable)} ({100.0 * zone_usable / zone_cap:.1f}%)")
        table.append("")
    msg.append(format_tab_table(table))
    return msg
