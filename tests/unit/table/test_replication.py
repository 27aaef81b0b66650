"""Quorums per consistency_mode (as Garage), and where full-copy tables live: every node
of the layout, gateways included, written at quorum max(1, n-1), read locally."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pygarage.rpc.replication_mode import ReplicationMode
from pygarage.table.replication import FullCopy, Sharded


@pytest.mark.parametrize(("rf", "mode", "read", "write"), [
    (1, "consistent", 1, 1), (2, "consistent", 1, 2), (3, "consistent", 2, 2),
    (5, "consistent", 3, 3), (3, "degraded", 1, 2), (3, "dangerous", 1, 1),
    (2, "degraded", 1, 2), (2, "dangerous", 1, 1)])
def test_quorums(rf: int, mode: str, read: int, write: int) -> None:
    system = SimpleNamespace(replication=ReplicationMode(rf, mode))
    s = Sharded(system)  # type: ignore[arg-type]
    assert (s.read_quorum, s.write_quorum) == (read, write)


def full_copy(me: str, nodes: list[str]) -> FullCopy:
    layout = SimpleNamespace(all_nodes=lambda: list(nodes))
    return FullCopy(SimpleNamespace(node_id=me, current_layout=layout))  # type: ignore[arg-type]


def test_full_copy_on_every_node_gateways_included() -> None:
    storage_and_gateway = ["n1", "n2", "n3", "gw"]
    f = full_copy("gw", storage_and_gateway)
    assert f.write_sets(b"h" * 32) == [storage_and_gateway]
    assert f.write_quorum == 3
    assert f.read_nodes(b"h" * 32) == ["gw"] and f.read_quorum == 1
    assert full_copy("n1", ["n1", "n2"]).write_quorum == 1
    assert full_copy("n1", ["n1"]).write_quorum == 1
    # No layout yet: this node alone (keys can be made before a layout exists).
    assert full_copy("n1", []).write_sets(b"h" * 32) == [["n1"]]
    assert full_copy("n1", []).write_quorum == 1
