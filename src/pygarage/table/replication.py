"""Where a table's entries live: sharded by partition (most tables) or a full copy on every
node (buckets, keys, aliases). Both read the layout history from System.

- Sharded: written to the partition's nodes in every live layout version (one write set
  per version, a write quorum in each), read from the read version's nodes at the read
  quorum; both quorums follow `consistency_mode`.
- FullCopy (as Garage): stored on every node of the current layout, gateways included (S3
  auth reads keys locally on whichever node a client reaches), written to all of them at
  quorum max(1, n-1) and read locally only.
"""

from __future__ import annotations

from ..rpc.system import System
from ..util.ids import partition_of


class Sharded:
    def __init__(self, system: System):
        self.system = system

    def storage_nodes(self, h: bytes) -> list[str]:
        return self.system.current_layout.nodes_of(partition_of(h))

    def write_sets(self, h: bytes) -> list[list[str]]:
        return self.system.write_sets_of(partition_of(h))

    def read_nodes(self, h: bytes) -> list[str]:
        return self.system.read_nodes_of(partition_of(h))

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
        # No layout yet (a fresh node): this node alone, so keys can be made before one.
        return self.system.current_layout.all_nodes() or [self.system.node_id]

    def write_sets(self, h: bytes) -> list[list[str]]:
        return [self.storage_nodes(h)]

    def read_nodes(self, h: bytes) -> list[str]:
        return [self.system.node_id]

    @property
    def read_quorum(self) -> int:
        return 1

    @property
    def write_quorum(self) -> int:
        n = len(self.system.current_layout.all_nodes())
        return max(1, n - 1)


Replication = Sharded | FullCopy
