"""Cluster fault scenarios (issue 7, "Done means"): real node processes on their own
loopback IPs behind fault proxies, concurrent clients recorded and checked
(testing/checker.py) after each fault: kill -9 under load and catch-up, a whole zone
down, a network partition, a node replaced and a node added under load, a node's clock
minutes ahead.

The harness itself is checked first and always runs: nodes talk only through the proxies,
a cut shows in `garage status` and heals by itself, and the checker finds nothing wrong
on a single node killed -9 under load, but does find an object deleted behind its back.

Checks that need the cluster to converge after the fault (a restarted node catching up,
every block back to 3 copies, new nodes getting the full-copy tables) come last and are
gated by _converges: without any table sync worker (anti-entropy) they may skip, after
everything else in the scenario passed.

Scenarios need replicated tables and blocks. Each starts its cluster and probes it
(replication_missing): it is skipped only while the probe fails on the stubs that stand in
for replication (their "cluster RPC not available" error in a node's log); any other
failure fails the test.

Operations per scenario: PYGARAGE_FAULT_OPS (the issue asks for >= 10,000: run with
PYGARAGE_FAULT_OPS=10000; about 25 operations/s go through a 3-node cluster on this
2-core machine, so 10,000 take ~7 min per scenario). The default, 1,000, keeps a scenario
near a minute in CI, where several suites share the cores; the checker's rules do not depend on
the count, only the odds of hitting a rare race do. PYGARAGE_FAULT_HISTORY=<file> writes
the history of a scenario with anomalies there, one operation per line."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from pygarage.testing.checker import Op, check, summary
from pygarage.testing.cluster import Cluster, FaultCluster, replication_missing
from pygarage.testing.node import GarageNode
from pygarage.testing.replicas import block_files, dump_tables, table_differences
from pygarage.testing.workload import Workload

OPS = int(os.environ.get("PYGARAGE_FAULT_OPS", "1000"))
THREADS = int(os.environ.get("PYGARAGE_FAULT_THREADS", "6"))
CONVERGE_S = float(os.environ.get("PYGARAGE_FAULT_CONVERGE_S", "180"))


def _wait(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)


def _assert_no_anomalies(w: Workload) -> None:
    # The verification reads must all be answered: a failed one would hide a lost object.
    unanswered = [o for o in w.history if o.final and not o.ok]
    assert not unanswered, [f"{o.kind} {o.key} via node {o.node}: {o.error}"
                            for o in unanswered[:10]]
    # Listings filter the merge of the read quorum (table/quorum.py): a key whose DELETE
    # was acknowledged before the listing started is an anomaly like any other.
    anomalies = check(w.history, deleted_in_listings=True)
    listed_deleted = sum(a.kind == "listed_deleted_key" for a in anomalies)
    print(f"{len(w.history)} operations: {summary(w.history)}; errors {w.errors()}; "
          f"deleted keys seen in listings: {listed_deleted}")
    if anomalies and os.environ.get("PYGARAGE_FAULT_HISTORY"):  # for a post-mortem
        with open(os.environ["PYGARAGE_FAULT_HISTORY"], "w") as f:
            for o in sorted(w.history, key=lambda o: o.start):
                f.write(json.dumps(dict(asdict(o), keys=sorted(o.keys or ()))) + "\n")
    assert not anomalies, "\n".join(str(a) for a in anomalies[:20])


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., FaultCluster]]:
    made: list[FaultCluster] = []

    def make(n: int, zones: int, **kw: Any) -> FaultCluster:
        c = FaultCluster(tmp_path / f"c{len(made)}", n, zones=zones, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
    # Faults are no excuse for a traceback: every error is handled and said in one line.
    for c in made:
        for n in c.nodes:
            text = n.log_path.read_text(errors="replace") if n.log_path.exists() else ""
            bad = [ln for ln in text.splitlines() if "Traceback" in ln or " ERROR asyncio" in ln]
            assert not bad, f"{n.log_path}: {bad[:3]}"


_missing: list[str] = []  # the probe's finding, once it hit the stubs (same code for all)


def _replicated(c: FaultCluster) -> None:
    if _missing:
        pytest.skip(f"{_missing[0]} (probed in an earlier scenario of this run)")
    c.start()
    reason = replication_missing(c)
    if reason:
        _missing.append(reason)
        pytest.skip(reason)


# ---------------------------------------------------------------------- the harness


def test_nodes_talk_through_proxies_and_a_cut_shows_in_status(
        cluster_factory: Callable[..., FaultCluster]) -> None:
    c = cluster_factory(3, 3, replication_factor=3)
    c.start()  # with a layout: `status` lists failed nodes that have a role
    # Every node knows the others at their proxy, and every link goes through one.
    for i, n in enumerate(c.nodes):
        addrs = {s["addr"] for s in n.admin("GetClusterStatus")["nodes"]}
        assert addrs == {f"{h}:{p}" for h, p in c.proxy_addr.values()}, (i, addrs)
    for a, b in (("n1", "n2"), ("n1", "n3"), ("n2", "n3")):
        assert c.proxy.connections(a, b) >= 1, (a, b)

    c.partition([0, 1], [2])
    took_cut = Cluster.wait_for(lambda: c.node_id(2) not in Cluster.up_ids(c.nodes[0]), 5)
    status = c.status(0)
    failed = status[status.index("==== FAILED NODES ===="):]
    assert c.node_id(2)[:16] in failed and c.node_id(1)[:16] not in failed
    assert c.proxy.connections("n1", "n3") == c.proxy.connections("n2", "n3") == 0
    # The minority side sees both others failed; the majority still sees each other.
    Cluster.wait_for(lambda: Cluster.up_ids(c.nodes[2]) == {c.node_id(2)}, 5)
    assert Cluster.up_ids(c.nodes[1]) == {c.node_id(0), c.node_id(1)}
    time.sleep(1.5)  # reconnection attempts go on and are refused
    assert c.node_id(2) not in Cluster.up_ids(c.nodes[0])
    assert c.proxy.proxy.refused >= 1

    c.heal()
    took_heal = c.wait_connected(timeout=40)  # peering retries back off up to 30 s
    assert "FAILED" not in c.status(2)
    print(f"partition seen after {took_cut:.2f} s, healed after {took_heal:.1f} s")


def test_checker_on_a_single_node_killed_under_load(tmp_path: Path) -> None:
    """No anomaly on a node that fsyncs its metadata and is killed -9 mid-load (the failed
    operations stay indeterminate); an object deleted behind the clients' back is found."""
    node = GarageNode(tmp_path / "n", extra="metadata_fsync = true\ndata_fsync = true\n",
                      block_size="64K")
    node.start()
    try:
        key = node.create_key()
        node.create_bucket("checked", key[0])
        w = Workload(lambda _i: node.s3(*key, connect_timeout=3, read_timeout=20), [0], "checked",
                     keys=30, seed=7)
        w.start(OPS // 3 * 2, threads=4)
        _wait(lambda: w.done >= OPS // 4, 300, "first quarter")
        node.kill()
        time.sleep(0.5)
        node.start()
        w.wait(600)
        w.verify()
        failed = [o for o in w.history if not o.ok]
        assert failed, "the kill should have failed some operations"
        assert sum(o.ok for o in w.history) > OPS // 2
        _assert_no_anomalies(w)

        # The scenarios' convergence helpers, on what a single node holds.
        items = _node_items(node)
        assert items["object"] >= 1 and items["version"] >= 1, items
        copies = _referenced_block_copies([node])
        assert copies and set(copies.values()) == {1}, copies  # large objects: blocks

        # A key whose last write is an acknowledged PUT begun after every other write of it
        # ended, all of them acknowledged: a failed (indeterminate) delete, or a delete
        # overlapping that PUT (either order is valid), would explain its disappearance,
        # and the checker rightly would not object.
        def settled(key: str) -> bool:
            ws = [o for o in w.history if o.key == key and o.kind in ("put", "delete")]
            last = max(ws, key=lambda o: o.start, default=None)
            return last is not None and last.kind == "put" and all(o.ok for o in ws) and \
                all(o.end < last.start for o in ws if o is not last)
        live = [o.key for o in w.history
                if o.final and o.kind == "get" and o.value and settled(o.key)]
        assert live, "some keys should be live at the end, settled by one last PUT"
        node.s3(*key).delete_object(Bucket="checked", Key=live[0])  # not recorded
        w.verify()
        found = check(w.history)
        assert {(a.kind, a.key) for a in found} >= {("lost_write", live[0]),
                                                    ("missing_listing_key", live[0])}

        # The offline replica comparison the kill -9 scenario ends with.
        node.stop()
        dump = dump_tables(node.root / "meta")
        assert dump["object"] and dump["version"] and dump["key"]
        assert table_differences({"a": dump, "b": dump}) == []
        other = {t: dict(v) for t, v in dump.items()}
        k = next(iter(other["object"]))
        other["object"][k] += b"x"
        del other["version"][next(iter(other["version"]))]
        diff = table_differences({"a": dump, "b": other})
        assert len(diff) == 2 and "1 with different content" in diff[0], diff
    finally:
        node.stop()


# ---------------------------------------------------------------------- scenarios


def _node_items(n: GarageNode) -> dict[str, int]:
    res = n.admin("GetNodeStatistics")["success"]
    (st,) = res.values()
    return {t["tableName"]: int(t["items"]) for t in st["tableStats"]}


SHORT_CONVERGE_S = 15.0


def _sync_workers(n: GarageNode) -> list[str]:
    """Table anti-entropy workers (Garage names them "<table> sync"; block "resync" is
    another thing)."""
    res = n.admin("ListWorkers", body={})  # {"success": {node id: [worker, ...]}, ...}
    names = [str(x["name"]) for ws in res["success"].values() for x in ws]
    return [x for x in names if "sync" in x.lower() and "resync" not in x.lower()]


def _replica_summary(c: FaultCluster) -> str:
    """What differs between the replicas: table sizes and block files per node."""
    out = []
    files = [block_files(n.root / "data") for n in c.nodes]
    common = set.intersection(*files) if files else set()
    for i, n in enumerate(c.nodes):
        items = _node_items(n) if n.proc is not None else {}
        out.append(f"n{i + 1}: {items}, {len(files[i])} block files "
                   f"({len(files[i] - common)} not on every node)")
    return "; ".join(out)


def _short_blocks(c: FaultCluster, limit: int = 5) -> str:
    """For a few referenced blocks on fewer nodes than the others: what each node knows."""
    live = [n for n in c.nodes if n.proc is not None]
    copies = _referenced_block_copies(live)
    short = sorted(h for h, k in copies.items() if k < min(3, len(live)))
    out = [f"; {len(short)} referenced blocks short of copies"]
    for h in short[:limit]:
        for i, n in enumerate(c.nodes):
            if n.proc is None:
                continue
            answers = n.admin("GetBlockInfo", body={"blockHash": h})["success"]
            info = answers.get(c.node_id(i)) or next(iter(answers.values()))
            refs = [(v["versionId"][:8], v["refDeleted"], v["versionDeleted"])
                    for v in info["versions"]]
            out.append(f"{h[:12]} n{i + 1}: rc {info['refcount']} present {info['present']} "
                       f"resync errors {info['resyncErrors']} refs {refs}")
    return "\n".join(out)


def _converges(c: FaultCluster, cond: Callable[[], Any], what: str, step: float = 1) -> None:
    """Wait for a convergence the scenario needs anti-entropy for. Without any table sync
    worker on the node, the wait is short and its failure skips the rest of the test (the
    load, fault and checker parts above have passed); with one, it is CONVERGE_S and its
    failure fails. A cluster that converges passes either way."""
    live = next(n for n in c.nodes if n.proc is not None)
    sync = _sync_workers(live)
    t0 = time.monotonic()
    try:
        _wait(cond, CONVERGE_S if sync else SHORT_CONVERGE_S, what, step)
        print(f"{what}: after {time.monotonic() - t0:.1f} s")
    except AssertionError:
        if sync:
            raise AssertionError(f"{what}: not within {CONVERGE_S:.0f} s; "
                                 + _replica_summary(c) + _short_blocks(c)) from None
        pytest.skip(f"{what}: not within {SHORT_CONVERGE_S:.0f} s, and no node runs a table "
                    "sync worker (anti-entropy, cluster part 2) yet; the load, fault and "
                    "checker parts of this scenario passed")


def _failures_through(w: Workload, nodes: set[int], t0: float, t1: float) -> list[Op]:
    return [o for o in w.history
            if o.node in nodes and not o.ok and o.start >= t0 and o.end <= t1]


def test_rf3_kill9_one_node_under_load_then_catch_up(
        cluster_factory: Callable[..., FaultCluster]) -> None:
    c = cluster_factory(3, 3, replication_factor=3)
    _replicated(c)
    assert c.bucket is not None
    w = Workload(c.s3, [0, 1, 2], c.bucket, seed=1)
    w.start(OPS, THREADS)
    _wait(lambda: w.done >= OPS // 3, 600, "a third of the load")
    c.kill(2)
    t_kill = time.monotonic()
    _wait(lambda: w.done >= OPS * 2 // 3, 600, "two thirds of the load")
    t_back = time.monotonic()
    c.start_node(2)
    w.wait(900)
    # Reads and writes went on through the two live nodes.
    assert _failures_through(w, {0, 1}, t_kill + 1, t_back) == []
    c.wait_connected()
    w.verify()  # quorum reads: right even before node 3 caught up
    _assert_no_anomalies(w)
    # It catches up by itself: same table sizes, every referenced block on every node (a
    # block no live version references may stay on some nodes until its GC delay), then
    # the same entries.
    _converges(c, lambda: len({tuple(sorted(_node_items(n).items())) for n in c.nodes}) == 1
               and set(_referenced_block_copies(c.nodes).values()) <= {len(c.nodes)},
               "replicas converged")
    c.stop()
    dumps = {f"n{i + 1}": dump_tables(n.root / "meta") for i, n in enumerate(c.nodes)}
    assert table_differences(dumps) == []


def _referenced_block_copies(nodes: list[GarageNode]) -> dict[str, int]:
    """Block hash -> number of `nodes` holding its file, for each block some live version
    still references (by the block_ref entries these nodes hold)."""
    files = [block_files(n.root / "data") for n in nodes]
    out = {}
    for h in set().union(*files):
        needed = False
        for n in nodes:
            info = n.admin("GetBlockInfo", body={"blockHash": h})
            for r in info["success"].values():
                needed = needed or any(not v["refDeleted"] for v in r["versions"])
        if needed:
            out[h] = sum(h in f for f in files)
    return out


def _serves(c: FaultCluster, i: int) -> bool:
    try:
        c.s3(i).head_bucket(Bucket=c.bucket)
    except Exception:  # noqa: BLE001 - 403 until the key reached the node
        return False
    return True


def _min_copies(c: FaultCluster, live: list[int]) -> int:
    return min(_referenced_block_copies([c.nodes[i] for i in live]).values(), default=3)


def test_five_nodes_three_zones_whole_zone_down(
        cluster_factory: Callable[..., FaultCluster]) -> None:
    c = cluster_factory(5, 3, replication_factor=3)  # dc1: n1 n2, dc2: n3 n4, dc3: n5
    _replicated(c)
    assert c.bucket is not None
    w = Workload(c.s3, [0, 1, 2, 3, 4], c.bucket, seed=2)
    w.start(OPS, THREADS)
    _wait(lambda: w.done >= OPS // 3, 600, "a third of the load")
    c.kill(2)
    c.kill(3)
    t_down = time.monotonic()
    _wait(lambda: w.done >= OPS * 2 // 3, 600, "two thirds of the load")
    t_up = time.monotonic()
    assert _failures_through(w, {0, 1, 4}, t_down + 1, t_up) == []  # fully available
    c.start_node(2)
    c.start_node(3)
    w.wait(900)
    c.wait_connected()
    w.verify()
    _assert_no_anomalies(w)
    _converges(c, lambda: _min_copies(c, [0, 1, 2, 3, 4]) >= 3,
               "every referenced block on 3 nodes", step=2)


def test_partition_minority_answers_503_and_nothing_is_lost(
        cluster_factory: Callable[..., FaultCluster]) -> None:
    c = cluster_factory(5, 3, replication_factor=3)
    _replicated(c)
    assert c.bucket is not None
    w = Workload(c.s3, [0, 1, 2, 3, 4], c.bucket, seed=3)
    w.start(OPS, THREADS)
    _wait(lambda: w.done >= OPS // 3, 600, "a third of the load")
    c.partition([0, 1], [2, 3, 4])  # zone dc1 alone: one copy of each partition
    t_cut = time.monotonic()
    _wait(lambda: w.done >= OPS * 2 // 3, 600, "two thirds of the load")
    t_heal = time.monotonic()
    c.heal()
    w.wait(900)
    during = [o for o in w.history if o.start >= t_cut + 1 and o.end <= t_heal]
    minority = [o for o in during if o.node in (0, 1)]
    assert minority and all(not o.ok and o.error.startswith("503") for o in minority), \
        {o.error for o in minority if o.ok or not o.error.startswith("503")}
    assert all(o.ok for o in during if o.node not in (0, 1))
    c.wait_connected(timeout=60)
    w.verify()
    _assert_no_anomalies(w)
    # Healed, it converges by itself, no repair command: peers a sync pass missed are
    # caught up within seconds, failed block fetches retried as each node comes back.
    _converges(c, lambda: _min_copies(c, [0, 1, 2, 3, 4]) >= 3,
               "every referenced block on 3 nodes", step=2)


def test_replace_failed_node_and_add_node_under_load(
        cluster_factory: Callable[..., FaultCluster]) -> None:
    c = cluster_factory(3, 3, replication_factor=3)
    _replicated(c)
    assert c.bucket is not None
    w = Workload(c.s3, [0, 1], c.bucket, seed=4)
    w.start(OPS, THREADS)
    _wait(lambda: w.done >= OPS // 4, 600, "a quarter of the load")
    c.kill(2)
    new = c.add_node(zone="dc3")
    c.nodes[0].cli("layout", "assign", "--replace", c.node_id(2)[:16], "-z", "dc3",
                   "-c", "1G", c.node_id(new)[:16])
    c.nodes[0].cli("layout", "apply", "--version", "2")
    _wait(lambda: w.done >= OPS // 2, 600, "half of the load")
    added = c.add_node(zone="dc1")
    c.nodes[0].cli("layout", "assign", "-z", "dc1", "-c", "1G", c.node_id(added)[:16])
    c.nodes[0].cli("layout", "apply", "--version", "3")
    w.wait(900)
    live = [0, 1, new, added]
    c.wait_connected(live)
    w.verify([0, 1])
    _assert_no_anomalies(w)
    # The new nodes get the full-copy tables (the key) by themselves, then serve S3.
    _converges(c, lambda: all(_serves(c, i) for i in (new, added)),
               "the new nodes know the key")
    _converges(c, lambda: _min_copies(c, live) >= 3, "every referenced block on 3 nodes",
               step=2)
    w.verify(live)  # every key through every node, the new ones included
    _assert_no_anomalies(w)


def test_node_clock_minutes_ahead(cluster_factory: Callable[..., FaultCluster]) -> None:
    c = cluster_factory(3, 3, replication_factor=3)
    c.clock_offset["n2"] = 300.0  # five minutes ahead (within SigV4's 15 min skew)
    _replicated(c)
    assert c.bucket is not None
    w = Workload(c.s3, [0, 1, 2], c.bucket, seed=5)
    w.run(OPS, THREADS, timeout=900)
    w.verify()
    _assert_no_anomalies(w)
