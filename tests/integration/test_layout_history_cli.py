"""`garage layout ...` against a real daemon: assignment report, gateways, zone redundancy,
several live versions with their update trackers, skip-dead-nodes, pruning, persistence
across a restart, and the admin API's refusals. Other nodes are only named in the layout
(no transport yet): they are down, which is what skip-dead-nodes is for."""

from __future__ import annotations

import json
import re
import urllib.error
from typing import Any

import pytest

from pygarage.testing.node import GarageNode

F = "f1" * 32  # a storage node that never comes up
G = "9a" * 32  # a gateway that never comes up


@pytest.fixture
def fresh(private_node: GarageNode) -> GarageNode:
    private_node.start(single_node=False)
    return private_node


def admin_error(node: GarageNode, endpoint: str, body: Any) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as e:
        node.admin(endpoint, body=body)
    return e.value.code, json.loads(e.value.read())["message"]


def test_layout_versions_trackers_and_skip_dead_nodes(fresh: GarageNode) -> None:
    g = fresh.cli
    me = g("node", "id", "-q").stdout.strip().split("@")[0]

    # v1: this node alone. One live version, stable.
    g("layout", "assign", "-z", "dc1", "-c", "1G", "-t", "fast", me[:6])
    show = g("layout", "show").stdout
    assert "Partitions are replicated 1 times on at least 1 distinct zones." in show
    assert "Optimal partition size:                     3.9 MB" in show
    assert re.search(r"dc1 +Tags +Partitions +Capacity +Usable capacity", show)
    assert re.search(rf"{me[:16]} +\[fast\] +256 \(256 new\) +1\.0 GB +1\.0 GB \(100\.0%\)",
                     show)
    g("layout", "apply", "--version", "1")
    key_id, secret = fresh.create_key("k")
    fresh.create_bucket("kept", key_id)
    s3 = fresh.s3(key_id, secret)
    s3.put_object(Bucket="kept", Key="before", Body=b"v1 data")
    hist = g("layout", "history").stdout
    assert re.search(r"#1 +current +1 +0", hist) and "stable state" in hist

    # v2: our capacity grows. We are the only storage node of every live version, so we
    # hold every copy: v1 is pruned at once and kept as historical.
    g("layout", "assign", "-c", "2G", me[:6])
    show = g("layout", "show").stdout
    assert "A total of 0 new copies of partitions need to be transferred." in show
    assert "(3.9 MB in previous layout)" in show
    g("layout", "apply", "--version", "2")
    hist = fresh.admin("GetClusterLayoutHistory")
    assert [(v["version"], v["status"]) for v in hist["versions"]] == [
        (2, "Current"), (1, "Historical")]
    assert hist["updateTrackers"] is None and hist["minAck"] == 2

    # v3: a storage node in another zone and a gateway. Data must move to F: v2 stays live
    # (draining) until F synced and every node reads from v3; the trackers say so.
    fresh.admin("UpdateClusterLayout",
                body={"roles": [{"id": F, "zone": "dc2", "capacity": 2 * 10**9, "tags": []},
                                {"id": G, "zone": "dc1", "capacity": None, "tags": []}]})
    show = g("layout", "show").stdout
    assert re.search(r"9a9a9a9a9a9a9a9a +\[\] +dc1 +gateway", show)
    moved = int(re.search(r"A total of (\d+) new copies", show).group(1))  # type: ignore
    assert 100 <= moved <= 156
    g("layout", "apply", "--version", "3")
    hist = fresh.admin("GetClusterLayoutHistory")
    assert [(v["version"], v["status"]) for v in hist["versions"]] == [
        (3, "Current"), (2, "Draining"), (1, "Historical")]
    assert hist["minAck"] == 2  # F never acknowledged v3
    assert hist["updateTrackers"][F] == {"ack": 2, "sync": 2, "syncAck": 2}
    assert hist["updateTrackers"][G] == {"ack": 2, "sync": 2, "syncAck": 2}
    assert hist["versions"][0]["gatewayNodes"] == 1
    assert hist["updateTrackers"][me] == {"ack": 3, "sync": 2, "syncAck": 2}
    text = g("layout", "history").stdout
    assert "==== UPDATE TRACKERS ====" in text and re.search(r"#2 +draining", text)
    assert "skip-dead-nodes --version 3`" in text
    layout = fresh.admin("GetClusterLayout")
    parts = {r["id"]: r["storedPartitions"] for r in layout["roles"]}
    assert parts[me] + parts[F] == 256 and parts[G] == 0

    # The history survives a restart as it was.
    fresh.restart()
    assert fresh.admin("GetClusterLayoutHistory") == hist

    # F is dead: skip it. Its ack moves; without --allow-missing-data nothing else can.
    out = g("layout", "skip-dead-nodes", "--version", "3").stdout
    assert f"Node {F[:16]}: ack tracker advanced to version 3" in out
    again = g("layout", "skip-dead-nodes", "--version", "3", check=False)
    assert again.returncode == 1 and "--allow-missing-data" in again.stderr
    assert fresh.admin("GetClusterLayoutHistory")["minAck"] == 3

    # v4: F and the gateway leave; with --allow-missing-data every tracker reaches v4, reads
    # move to v4 and the older versions are pruned.
    g("layout", "remove", F[:8])
    g("layout", "remove", G[:8])
    g("layout", "apply", "--version", "4")
    bad = g("layout", "skip-dead-nodes", "--version", "9", check=False)
    assert bad.returncode == 1 and "you may use the following version numbers: 3 4" in \
        bad.stderr
    out = g("layout", "skip-dead-nodes", "--version", "4", "--allow-missing-data").stdout
    assert f"Node {F[:16]}: sync tracker advanced to version 4" in out
    hist = fresh.admin("GetClusterLayoutHistory")
    assert [(v["version"], v["status"]) for v in hist["versions"]][:2] == [
        (4, "Current"), (3, "Historical")]
    assert "stable state" in g("layout", "history").stdout

    # This node owns every partition again and serves what was written under v1.
    layout = fresh.admin("GetClusterLayout")
    assert [(r["id"], r["storedPartitions"]) for r in layout["roles"]] == [(me, 256)]
    assert s3.get_object(Bucket="kept", Key="before")["Body"].read() == b"v1 data"
    s3.put_object(Bucket="kept", Key="after", Body=b"v4 data")
    assert "Traceback" not in fresh.log_path.read_text()


def test_layout_parameters_and_refusals(fresh: GarageNode) -> None:
    g = fresh.cli
    me = g("node", "id", "-q").stdout.strip().split("@")[0]
    assert admin_error(fresh, "UpdateClusterLayout",
                       {"parameters": {"zoneRedundancy": {"atLeast": 2}}}) == (
        400, "The zone redundancy must be smaller or equal to the replication factor (1).")
    r = g("layout", "config", "-r", "2", check=False)
    assert r.returncode == 1 and "smaller or equal to the replication factor (1)" in r.stderr
    assert admin_error(fresh, "UpdateClusterLayout",
                       {"roles": [{"id": me, "zone": "a", "capacity": 10, "tags": []}]})[1] \
        == "Capacity should be at least 1K (1024)"
    for bad in ({"roles": [{"id": "zz", "remove": True}]}, {"roles": [{"id": me}]},
                {"roles": "x"}, [1], {"roles": [{"id": me, "zone": "a", "capacity": "1G"}]}):
        code, _ = admin_error(fresh, "UpdateClusterLayout", bad)
        assert code == 400
    # Only a gateway: no storage node, the preview explains and apply refuses.
    g("layout", "assign", "-z", "dc1", "-g", me[:6])
    assert fresh.admin("GetClusterLayout")["stagedRoleChanges"] == [
        {"id": me, "zone": "dc1", "capacity": None, "tags": []}]
    preview = fresh.admin("PreviewClusterLayoutChanges", body={})
    assert preview == {"error": "The number of nodes with positive capacity (0) is smaller "
                                "than the replication factor (1)."}
    show = g("layout", "show").stdout
    assert "This new layout cannot yet be applied." in show
    assert admin_error(fresh, "ApplyClusterLayout", {"version": 1})[0] == 400
    assert admin_error(fresh, "ApplyClusterLayout", {"version": 7})[1].startswith(
        "Invalid new layout version")
    g("layout", "config", "-r", "max")
    g("layout", "revert", "--yes")
    layout = fresh.admin("GetClusterLayout")
    assert layout["stagedRoleChanges"] == [] and layout["stagedParameters"] is None
    assert admin_error(fresh, "ClusterLayoutSkipDeadNodes", {"version": 1})[1] == (
        "This command cannot be called when there is only one live cluster layout version")


def test_fifth_equal_node_moves_few_partitions(fresh: GarageNode) -> None:
    """The issue's figure, through the daemon: 4 equal nodes at RF 1, then a 5th."""
    g = fresh.cli
    me = g("node", "id", "-q").stdout.strip().split("@")[0]
    others = [f"{i:02x}" * 32 for i in (0xA1, 0xA2, 0xA3, 0xA4)]
    roles = [{"id": n, "zone": "dc1", "capacity": 10**12, "tags": []} for n in others[:3]]
    fresh.admin("UpdateClusterLayout", body={"roles": roles})
    g("layout", "assign", "-z", "dc1", "-c", "1T", me[:6])
    g("layout", "apply", "--version", "1")
    stored = {r["id"]: r["storedPartitions"] for r in fresh.admin("GetClusterLayout")["roles"]}
    assert sorted(stored.values()) == [64, 64, 64, 64]
    fresh.admin("UpdateClusterLayout", body={"roles": [
        {"id": others[3], "zone": "dc1", "capacity": 10**12, "tags": []}]})
    show = g("layout", "show").stdout
    assert "A total of 48 new copies of partitions need to be transferred." in show
    assert re.search(rf"{others[3][:16]} +\[\] +48 \(48 new\)", show)
