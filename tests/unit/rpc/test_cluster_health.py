"""GetClusterHealth counts a partition as having quorum only when every live layout
version's write set for it has a quorum of nodes up (not only the current version's)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pygarage.api.admin.cluster import get_cluster_health
from pygarage.rpc.layout.version import NodeRole
from pygarage.rpc.system import System
from pygarage.util.config import config_from_dict

OTHER = "f1" * 32  # never up: there is no RPC in this test


def test_quorum_needs_every_live_version(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    s = System(config_from_dict({"metadata_dir": str(tmp_path / "meta"),
                                 "data_dir": str(tmp_path / "data"),
                                 "rpc_bind_addr": "127.0.0.1:1", "rpc_secret": "11" * 32,
                                 "replication_factor": 1}))
    g: Any = SimpleNamespace(system=s)
    h = s.layout
    h.stage_role(OTHER, NodeRole("z1", 10**9, ()), s.clock)
    h.apply(1, s.clock)  # v1: OTHER holds everything
    s.save_layout()
    health = get_cluster_health(g)
    assert health["partitionsQuorum"] == 0 and health["status"] == "unavailable"
    h.stage_role(s.node_id, NodeRole("z1", 10**9, ()), s.clock)
    h.apply(2, s.clock)  # v2: half of the partitions move to us; v1 stays live
    s.save_layout()
    assert [v.version for v in h.versions] == [1, 2]
    mine = h.current.partitions_of(s.node_id)
    assert 100 < mine < 156
    health = get_cluster_health(g)
    # Writes to our partitions still need OTHER's copy in v1: no quorum anywhere.
    assert health["partitionsQuorum"] == 0 and health["partitionsAllOk"] == 0
    assert health["knownNodes"] == 2 and health["connectedNodes"] == 1
    assert health["storageNodes"] == 2 and health["storageNodesOk"] == 1
