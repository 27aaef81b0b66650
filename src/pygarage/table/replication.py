"""Where a table's entries live: sharded by partition (most tables) or a full copy on every
node (buckets, keys, aliases). Both read the current layout from System."""

from __future__ import annotations

from ..rpc.system import System
from ..util.ids import partition_of


class Sharded:
    def __init__(self, system: System):
        self.system = system

    def storage_nodes(self, h: bytes) -> list[str]:
        return self.system.current_layout.nodes_of(partition_of(h))

    @property
    def read_quorum(self) -> int:
        return self.system.replication.read_quorum

    @property
    def write_quorum(self) -> int:
        return self.system.replication.write_quorum


class FullCopy:
    def __init__(self, system: System):
        self.system = system

    def storage_nodes(self, h: bytes) -> list[str]:
        nodes = self.system.current_layout.storage_nodes()
        return nodes or [self.system.node_id]

    @property
    def read_quorum(self) -> int:
        return 1

    @property
    def write_quorum(self) -> int:
        n = len(self.system.current_layout.storage_nodes()) or 1
        return n // 2 + 1


Replication = Sharded | FullCopy
