"""The sync and GC workers in real `garage server` processes: 3 nodes form a cluster, get a
layout, then a second version; every node's table sync workers finish passes, the sync
trackers reach the new version and the old one is retired, with no traceback in any log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pygarage.testing.cluster import Cluster, node_id
from pygarage.testing.node import GarageNode


def workers(n: GarageNode) -> list[dict[str, Any]]:
    res = n.admin("ListWorkers", body={})
    return list(next(iter(res["success"].values())))


def history(n: GarageNode) -> dict[str, Any]:
    return dict(n.admin("GetClusterLayoutHistory"))


def test_sync_workers_retire_the_old_layout_version(tmp_path: Path) -> None:
    c = Cluster(tmp_path, replication_factor=2)
    try:
        first = c.add()
        for _ in range(2):
            c.add([first])
        ids = [node_id(n) for n in c.nodes]
        c.wait_for(lambda: all(c.up_ids(n) == set(ids) for n in c.nodes), timeout=20)
        for i, nid in enumerate(ids[:2]):
            first.cli("layout", "assign", "-z", f"dc{i + 1}", "-c", "1G", nid[:8])
        first.cli("layout", "apply", "--version", "1")
        c.wait_for(lambda: all(history(n)["currentVersion"] == 1 for n in c.nodes), timeout=20)
        names = {w["name"] for w in workers(first)}
        assert {"object sync", "key sync", "version GC", "block_ref GC"} <= names
        # Node 3 joins: partitions move to it; v1 stays live until every node synced.
        first.cli("layout", "assign", "-z", "dc3", "-c", "1G", ids[2][:8])
        first.cli("layout", "apply", "--version", "2")

        def retired() -> bool:
            return all([v["version"] for v in history(n)["versions"]
                        if v["status"] != "Historical"] == [2] for n in c.nodes)
        c.wait_for(retired, timeout=90)
        h = history(c.nodes[2])
        assert h["updateTrackers"] is None or all(
            t["sync"] >= 2 for t in h["updateTrackers"].values())
        for n in c.nodes:
            syncs = [w for w in workers(n) if w["name"].endswith(" sync")]
            assert len(syncs) == 8  # one per table, bucket_counter included
            assert all("full syncs done" in " ".join(w["freeform"]) for w in syncs)
            assert not any(w["errors"] for w in workers(n) if w["name"].endswith(" GC"))
    finally:
        c.stop()
    for n in c.nodes:
        log = n.log_path.read_text()
        assert "Traceback" not in log, log[-3000:]
