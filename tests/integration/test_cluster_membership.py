"""Several real `garage server` processes on loopback forming a cluster: bootstrap through
one node and gossip, layout gossip, a killed node seen failed then back with no command, a
node with the wrong rpc_secret kept out, and the partitions moved by a 5th equal node."""

from __future__ import annotations

import re
import secrets
import time
import urllib.error
from collections.abc import Iterator

import pytest

from pygarage.testing.cluster import Cluster, node_id
from pygarage.testing.node import GarageNode

PING_TIMEOUT_S = 2.0  # rpc_ping_timeout_msec in the cluster's test config


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        first = c.add()
        for _ in range(4):
            c.add([first])  # only node 1 in bootstrap_peers
        yield c
    finally:
        c.stop()


def ids(c: Cluster) -> set[str]:
    return {node_id(n) for n in c.nodes}


def layout_version(n: GarageNode) -> int:
    return int(n.admin("GetClusterLayout")["version"])


def test_five_nodes_bootstrapped_on_one_see_each_other(cluster: Cluster) -> None:
    took = cluster.wait_for(lambda: all(cluster.up_ids(n) == ids(cluster)
                                        for n in cluster.nodes), timeout=10)
    print(f"5 nodes see each other after {took:.1f} s")
    health = cluster.nodes[4].admin("GetClusterHealth")
    assert health["knownNodes"] == 5 and health["connectedNodes"] == 5
    # Everyone's address was learnt (by gossip for most), and persisted for restarts.
    for n in cluster.nodes:
        status = n.admin("GetClusterStatus")["nodes"]
        assert {s["addr"] for s in status} == {f"127.0.0.1:{m.rpc_port}" for m in cluster.nodes}
        assert {s["hostname"] for s in status} != {None}
    cluster.wait_for(lambda: all(
        len(re.findall("@", (n.root / "meta" / "peer_list").read_text())) == 4
        for n in cluster.nodes), timeout=5)
    out = cluster.nodes[0].cli("status").stdout
    assert out.count("NO ROLE ASSIGNED") == 5 and "FAILED" not in out


def test_multi_node_admin_calls_reach_every_node(cluster: Cluster) -> None:
    n1 = cluster.nodes[0]
    info = n1.admin("GetNodeInfo", {"node": "*"})
    assert set(info["success"]) == ids(cluster) and info["error"] == {}
    for nid, i in info["success"].items():
        assert i["nodeId"] == nid
    third = node_id(cluster.nodes[2])
    one = n1.admin("GetNodeInfo", {"node": third})
    assert list(one["success"]) == [third]
    assert one["success"][third]["rpcPublicAddr"] == f"127.0.0.1:{cluster.nodes[2].rpc_port}"
    stats = n1.cli("stats", "-a").stdout
    assert all(f"Stats for node {nid}" in stats or nid[:16] in stats for nid in ids(cluster))
    with pytest.raises(urllib.error.HTTPError) as e:
        n1.admin("GetNodeInfo", {"node": "nope"})
    assert e.value.code == 400


def test_layout_applied_on_node2_reaches_all_and_fifth_node_moves_few(
        cluster: Cluster) -> None:
    n1, n2, *_ = cluster.nodes
    all_ids = [node_id(n) for n in cluster.nodes]
    for i, nid in enumerate(all_ids[:4]):
        n2.cli("layout", "assign", "-z", f"dc{i + 1}", "-c", "1G", nid[:8])
    n2.cli("layout", "apply", "--version", "1")
    took = cluster.wait_for(lambda: all(layout_version(n) == 1 for n in cluster.nodes))
    print(f"layout v1 applied on node 2 seen by all after {took:.1f} s")
    stored = {r["id"]: r["storedPartitions"] for r in n1.admin("GetClusterLayout")["roles"]}
    assert stored == {nid: 64 for nid in all_ids[:4]}

    # Staging also travels: staged on node 1, shown and applied on node 5.
    n1.cli("layout", "assign", "-z", "dc5", "-c", "1G", all_ids[4][:8])
    cluster.wait_for(lambda: cluster.nodes[4].admin("GetClusterLayout")["stagedRoleChanges"])
    show = cluster.nodes[4].cli("layout", "show").stdout
    moved = int(re.search(r"A total of (\d+) new copies", show).group(1))  # type: ignore
    print(f"adding a 5th equal node at RF 1 moves {moved} of 256 partitions")
    assert moved <= 60
    cluster.nodes[4].cli("layout", "apply", "--version", "2")
    cluster.wait_for(lambda: all(layout_version(n) == 2 for n in cluster.nodes))
    out = n1.cli("status").stdout
    assert "NO ROLE ASSIGNED" not in out
    for i in range(5):
        assert re.search(rf"{all_ids[i][:16]} .* dc{i + 1} +1\.0 GB +\S+ GB", out), out
    health = n1.admin("GetClusterHealth")
    assert health["status"] == "healthy" and health["storageNodesOk"] == 5
    assert health["partitionsQuorum"] == health["partitionsAllOk"] == 256


def test_killed_node_is_failed_then_healthy_after_restart(cluster: Cluster) -> None:
    n1, victim = cluster.nodes[0], cluster.nodes[2]
    vid = node_id(victim)
    cluster.wait_for(lambda: vid in cluster.up_ids(n1))
    victim.kill()
    took = cluster.wait_for(lambda: vid not in cluster.up_ids(n1), timeout=PING_TIMEOUT_S)
    print(f"killed node seen down after {took:.2f} s")
    out = n1.cli("status").stdout
    failed = out[out.index("==== FAILED NODES ===="):]
    assert re.search(rf"{vid[:16]} .* dc3 .*(second|seconds) ago", failed), out
    health = n1.admin("GetClusterHealth")
    assert health["connectedNodes"] == 4 and health["storageNodesOk"] == 4
    info = n1.admin("GetNodeInfo", {"node": "*"})
    assert set(info["success"]) == ids(cluster) - {vid} and set(info["error"]) == {vid}
    assert health["status"] == "unavailable"  # RF 1: its partitions have no copy up
    assert health["partitionsQuorum"] < 256

    victim.start(single_node=False)  # no bootstrap needed: its peer list is on disk
    took = cluster.wait_for(lambda: all(cluster.up_ids(n) == ids(cluster)
                                        for n in cluster.nodes), timeout=10)
    print(f"restarted node healthy everywhere after {took:.1f} s")
    assert "FAILED" not in n1.cli("status").stdout


def test_wrong_rpc_secret_never_joins(cluster: Cluster) -> None:
    n1 = cluster.nodes[0]
    intruder = cluster.add([n1], secret=secrets.token_hex(32))
    try:
        bad = node_id(intruder)
        time.sleep(3)
        for n in cluster.nodes[:5]:
            assert bad not in {s["id"] for s in n.admin("GetClusterStatus")["nodes"]}
        # It learnt nothing: no peer up, no other node's address, no layout.
        st = intruder.admin("GetClusterStatus")
        assert [s["id"] for s in st["nodes"] if s["isUp"]] == [bad]
        assert {s["id"] for s in st["nodes"]} == {bad, node_id(n1)}
        assert st["layoutVersion"] == 0
    finally:
        intruder.stop()
        cluster.nodes.remove(intruder)
