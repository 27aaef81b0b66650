"""One cluster layout version: roles, parameters and the ring of partitions (pure data).

The ring is Garage's: `node_id_vec` lists storage nodes (sorted by id) then gateways, and
`ring` holds P x rf indexes into it, partition-major. A version is immutable once applied:
every node must hold byte-identical copies of version N (layout.md §2, §4).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from ...util.codec import packb
from ...util.crdt.lww import LwwMap

N_PARTITIONS = 256
MAX_STORAGE_NODES = 256
MAXIMUM = "maximum"  # zone redundancy: as many zones as possible

ZoneRedundancy = str | int  # MAXIMUM or AtLeast(n)


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
        return NodeRole(str(o["zone"]), o["capacity"], tuple(o.get("tags", ())))


def effective_zone_redundancy(zr: ZoneRedundancy, rf: int, n_storage_zones: int) -> int:
    # Garage counts the zones of gateways too for MAXIMUM; we count storage zones only, so a
    # gateway alone in its zone cannot make a layout impossible (layout.md §1).
    return min(rf, n_storage_zones) if zr == MAXIMUM else int(zr)


@dataclass(frozen=True)
class LayoutVersion:
    version: int = 0
    replication_factor: int = 1
    zone_redundancy: ZoneRedundancy = MAXIMUM
    # node id -> (timestamp, role object or None): the LWW entries staged changes merge into.
    roles: LwwMap = field(default_factory=dict)
    node_id_vec: tuple[str, ...] = ()
    nongateway_count: int = 0
    ring: bytes = b""
    partition_size: int = 0
    partitions: int = N_PARTITIONS

    # -- accessors
    def role(self, node: str) -> NodeRole | None:
        entry = self.roles.get(node)
        return NodeRole.from_obj(entry[1]) if entry and entry[1] is not None else None

    def node_roles(self) -> dict[str, NodeRole]:
        return {n: NodeRole.from_obj(v) for n, (_, v) in self.roles.items() if v is not None}

    def storage_nodes(self) -> list[str]:
        return list(self.node_id_vec[:self.nongateway_count])

    def gateway_nodes(self) -> list[str]:
        return list(self.node_id_vec[self.nongateway_count:])

    def all_nodes(self) -> list[str]:
        return list(self.node_id_vec)

    def ring_ready(self) -> bool:
        return len(self.ring) == self.partitions * self.replication_factor > 0

    def nodes_of(self, partition: int) -> list[str]:
        """The nodes storing this partition; none while the ring is not ready."""
        if not self.ring_ready():
            return []
        rf = self.replication_factor
        return [self.node_id_vec[i] for i in self.ring[partition * rf:(partition + 1) * rf]]

    def partitions_of(self, node: str) -> int:
        try:
            idx = self.node_id_vec.index(node)
        except ValueError:
            return 0
        return self.ring.count(idx) if idx < self.nongateway_count else 0

    def usage(self) -> list[int]:
        """k_n for each storage node index."""
        counts = [0] * self.nongateway_count
        for i in self.ring:
            counts[i] += 1
        return counts

    def effective_zone_redundancy(self) -> int:
        zones = {r.zone for r in self.node_roles().values() if r.capacity is not None}
        return effective_zone_redundancy(self.zone_redundancy, self.replication_factor,
                                         len(zones))

    # -- invariants
    def check(self) -> None:
        """Structural invariants of layout.md §3 (the optimality of partition_size is
        checked by assign.check_optimal). Raises LayoutError."""
        roles = self.node_roles()
        storage = sorted(n for n, r in roles.items() if r.capacity is not None)
        gateways = sorted(n for n, r in roles.items() if r.capacity is None)
        if list(self.node_id_vec) != storage + gateways or self.nongateway_count != len(storage):
            raise LayoutError("node_id_vec does not contain the correct set of nodes")
        rf = self.replication_factor
        if len(self.ring) != self.partitions * rf:
            raise LayoutError(f"ring has length {len(self.ring)} instead of "
                              f"{self.partitions * rf}")
        if any(i >= self.nongateway_count for i in self.ring):
            raise LayoutError("ring contains a node that is not a storage node")
        zr = self.effective_zone_redundancy()
        for p in range(self.partitions):
            nodes = self.ring[p * rf:(p + 1) * rf]
            if len(set(nodes)) != rf:
                raise LayoutError(f"partition {p} does not have {rf} distinct nodes")
            if len({roles[self.node_id_vec[i]].zone for i in nodes}) < zr:
                raise LayoutError(f"partition {p} is stored in fewer than {zr} zones")
        for idx, k in enumerate(self.usage()):
            cap = roles[self.node_id_vec[idx]].capacity or 0
            if k * self.partition_size > cap:
                raise LayoutError(f"node usage ({k * self.partition_size}) is bigger than "
                                  f"node capacity ({cap})")

    def is_valid(self) -> bool:
        try:
            self.check()
        except LayoutError:
            return False
        return True

    # -- encoding
    def to_obj(self) -> dict[str, Any]:
        return {"version": self.version, "rf": self.replication_factor,
                "zr": self.zone_redundancy,
                "roles": {n: [ts, v] for n, (ts, v) in sorted(self.roles.items())},
                "nodes": list(self.node_id_vec), "ngw": self.nongateway_count,
                "ring": self.ring, "psize": self.partition_size, "parts": self.partitions}

    @staticmethod
    def from_obj(o: dict[str, Any]) -> LayoutVersion:
        return LayoutVersion(
            version=int(o["version"]), replication_factor=int(o["rf"]),
            zone_redundancy=o["zr"] if o["zr"] == MAXIMUM else int(o["zr"]),
            roles={str(n): (int(e[0]), e[1]) for n, e in o["roles"].items()},
            node_id_vec=tuple(o["nodes"]), nongateway_count=int(o["ngw"]),
            ring=bytes(o["ring"]), partition_size=int(o["psize"]),
            partitions=int(o.get("parts", N_PARTITIONS)))

    def digest(self) -> bytes:
        return hashlib.blake2b(packb(self.to_obj()), digest_size=32).digest()

    def with_version(self, version: int) -> LayoutVersion:
        return replace(self, version=version)
