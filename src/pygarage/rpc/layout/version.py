"""A cluster layout version: roles, and the assignment of 256 partitions to nodes (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

N_PARTITIONS = 256


class LayoutError(Exception):
    """A layout change that cannot be applied; the message tells the operator why."""


@dataclass(frozen=True)
class NodeRole:
    zone: str
    capacity: int | None  # None: gateway (serves APIs, stores nothing)
    tags: tuple[str, ...] = ()

    def to_obj(self) -> dict[str, Any]:
        return {"zone": self.zone, "capacity": self.capacity, "tags": list(self.tags)}

    @staticmethod
    def from_obj(o: dict[str, Any]) -> NodeRole:
        return NodeRole(o["zone"], o["capacity"], tuple(o.get("tags", ())))


@dataclass
class LayoutVersion:
    version: int = 0
    replication_factor: int = 1
    zone_redundancy: str | int = "maximum"
    roles: dict[str, NodeRole] = field(default_factory=dict)
    # ring[p] = the node ids holding partition p, best first.
    ring: list[list[str]] = field(default_factory=list)
    partition_size: int = 0

    def storage_nodes(self) -> list[str]:
        return sorted(n for n, r in self.roles.items() if r.capacity is not None)

    def gateway_nodes(self) -> list[str]:
        return sorted(n for n, r in self.roles.items() if r.capacity is None)

    def nodes_of(self, partition: int) -> list[str]:
        return self.ring[partition] if self.ring else []

    def partitions_of(self, node: str) -> int:
        return sum(1 for nodes in self.ring if node in nodes)

    def to_obj(self) -> dict[str, Any]:
        return {"version": self.version, "rf": self.replication_factor,
                "zr": self.zone_redundancy,
                "roles": {n: r.to_obj() for n, r in self.roles.items()},
                "ring": self.ring, "psize": self.partition_size}

    @staticmethod
    def from_obj(o: dict[str, Any]) -> LayoutVersion:
        return LayoutVersion(o["version"], o["rf"], o["zr"],
                             {n: NodeRole.from_obj(r) for n, r in o["roles"].items()},
                             [list(x) for x in o["ring"]], o["psize"])


def compute_assignment(roles: dict[str, NodeRole], rf: int,
                       zone_redundancy: str | int) -> tuple[list[list[str]], int, list[str]]:
    """Spread 256 partitions x rf replicas over storage nodes, zone-aware and roughly
    proportional to capacity. Returns (ring, partition size, report lines).

    This is a greedy assignment: each partition takes, zone by zone, the node furthest below
    its capacity share. It does not minimise data movement between versions; the optimal
    flow-based algorithm comes with multi-node clusters.
    """
    storage = {n: r for n, r in roles.items() if r.capacity is not None}
    if len(storage) < rf:
        raise LayoutError(f"the replication factor is {rf} but only {len(storage)} storage "
                          "node(s) have a role: assign more nodes with a capacity")
    zones = sorted({r.zone for r in storage.values()})
    want_zones = min(len(zones), rf) if zone_redundancy == "maximum" else int(zone_redundancy)
    if want_zones > len(zones) or want_zones > rf:
        raise LayoutError(f"zone redundancy {want_zones} impossible with {len(zones)} zone(s) "
                          f"and replication factor {rf}")
    total = sum(r.capacity or 0 for r in storage.values())
    if total <= 0:
        raise LayoutError("storage nodes must have a capacity > 0")
    # Target replica count per node, capped at one replica per partition.
    target = {n: N_PARTITIONS * rf * (r.capacity or 0) / total for n, r in storage.items()}
    load = dict.fromkeys(storage, 0)
    ring: list[list[str]] = []
    for _p in range(N_PARTITIONS):
        chosen: list[str] = []
        used_zones: set[str] = set()

        def deficit(n: str) -> tuple[float, str]:
            return (load[n] - target[n], n)

        while len(chosen) < rf:
            candidates = [n for n in storage if n not in chosen]
            if len(used_zones) < want_zones:
                fresh = [n for n in candidates if storage[n].zone not in used_zones]
                candidates = fresh or candidates
            best = min(candidates, key=deficit)
            chosen.append(best)
            used_zones.add(storage[best].zone)
            load[best] += 1
        ring.append(chosen)
    psize = min((storage[n].capacity or 0) // load[n] for n in storage if load[n] > 0)
    report = [f"Partitions are replicated {rf} time(s) on at least {want_zones} distinct "
              "zone(s).", f"Optimal partition size: {psize} bytes", ""]
    for n in sorted(storage):
        r = storage[n]
        report.append(f"  {n[:16]}  zone {r.zone}  {load[n]} partitions  usable "
                      f"{load[n] * psize} of {r.capacity} bytes")
    return ring, psize, report
