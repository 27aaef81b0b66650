"""Anti-entropy between in-process nodes over the real RPC (testing/inproc.py): entries
written on one node only reach the others through sync; a node that was down catches up;
a layout change moves entries, advances the sync trackers and retires the old version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sync_helpers import contents, same_everywhere, until, versions, write_local

from pygarage.model.key_table import Key
from pygarage.model.s3.object_table import COMPLETE, DELETE_MARKER, Object, ObjectVersion
from pygarage.model.s3.version_table import Version
from pygarage.net.peer import RpcError
from pygarage.rpc.layout.version import NodeRole
from pygarage.table.sync import repair_tables
from pygarage.testing.inproc import InprocCluster


async def test_sync_copies_entries_and_catches_up(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3) as c:
        g1, g2, g3 = c.garages
        await write_local(g1, g1.version_table, versions(300, 1))
        await write_local(g2, g2.version_table, versions(5, 2))
        assert not same_everywhere(c, "version")
        for g in c.garages:
            await repair_tables(g)
        await until(lambda: same_everywhere(c, "version"), what="sync")
        assert len(contents(g3, "version")) == 305
        assert contents(g1, "version") == contents(g3, "version")
        s = next(s for s in g1.table_syncers if s.table.name == "version")
        assert s.items_sent >= 300
        await until(lambda: s.current is None, what="pass end")
        st = s.status()
        assert st["fullSyncs"] >= 1 and st["queueLength"] == 0 and st["progress"] == "idle"
        assert "full syncs done" in str(st["freeform"])
        # Node 3 is down while nodes 1 and 2 take writes; restarted, it catches up alone
        # (a node coming back triggers a pass on the others).
        await c.nodes[2].stop()
        await write_local(g1, g1.version_table, versions(40, 3))
        await write_local(g2, g2.version_table, versions(7, 4))
        await repair_tables(g1)
        await repair_tables(g2)
        await until(lambda: same_everywhere(c, "version"), what="sync of 1 and 2")
        nd3 = await c.restart(2)
        await until(lambda: same_everywhere(c, "version"), what="catch-up")
        assert len(contents(nd3.garage, "version")) == 352
        for g in c.garages:
            assert g.version_table.data.merkle.matches_entries() == []


async def test_sync_endpoints_refuse_malformed_requests(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=2, rf=2, workers=False) as c:
        g1, g2 = c.garages
        h = g1.rpc
        node = c.nodes[1].id
        bad: list[tuple[str, Any]] = [
            ("table/version/sync/roots", "x"), ("table/version/sync/roots", [256]),
            ("table/version/sync/roots", [True]), ("table/version/sync/roots", list(range(300))),
            ("table/version/sync/nodes", {"p": 1, "pre": [b"\x10"]}),
            ("table/version/sync/nodes", {"p": -1, "pre": []}),
            ("table/version/sync/nodes", {"p": 1, "pre": [b"\x00" * 65]}),
            ("table/version/sync/nodes", [1]),
            ("table/version/sync/items", [b"garbage"]), ("table/version/sync/items", [1]),
            ("table/version/sync/items", {"a": 1}),
            ("table/object/sync/items", [Version(b"u" * 16).encode()]),
            ("table/version/sync/items", [b"PGver1" + b"\x94\x01\x02\x03\x04"]),
            ("table/version/sync/behind", [node, [256]]),
            ("table/version/sync/behind", [node.upper(), [1]]),
            ("table/version/sync/behind", [node[:-1] + "\u0661", [1]]),
            ("table/version/sync/behind", [node.encode(), [1]]), ("table/version/sync/behind", []),
            ("table/version/sync/behind", [node, [1], 2]), ("table/version/sync/behind", "x"),
        ]
        for path, body in bad:
            with pytest.raises(RpcError):
                await h.call_body(node, path, body)
        assert g2.version_table.data.count() == 0
        # Well-formed requests work.
        v = versions(1, 9)[0]
        await h.call_body(node, "table/version/sync/items", [v.encode()])
        assert g2.version_table.data.read_entry(v.uuid, b"") == v
        # An entry that decodes but cannot merge with what is stored: refused whole.
        b = b"B" * 32
        good = ObjectVersion(b"u" * 16, 1000, COMPLETE, kind=DELETE_MARKER)
        await h.call_body(node, "table/object/sync/items", [Object(b, "k", [good]).encode()])
        odd = ObjectVersion(b"u" * 16, [1], COMPLETE, kind=DELETE_MARKER)  # type: ignore[arg-type]
        with pytest.raises(RpcError, match="refused"):
            await h.call_body(node, "table/object/sync/items",
                              [Object(b, "j", [good]).encode(), Object(b, "k", [odd]).encode()])
        assert g2.object_table.data.read_entry(b, b"k") == Object(b, "k", [good])
        assert g2.object_table.data.read_entry(b, b"j") is None
        # A hint about a node outside the layout, or about itself, is ignored.
        s2 = next(s for s in g2.table_syncers if s.table.name == "version")
        for who in ("ab" * 32, node):
            await h.call_body(node, "table/version/sync/behind", [who, [1, 2]])
        assert s2.catch_up.behind == {}
        await h.call_body(node, "table/version/sync/behind", [c.nodes[0].id, [1, 2]])
        assert s2.catch_up.behind == {c.nodes[0].id: {1, 2}}
        r = await h.call_body(node, "table/version/sync/roots", [0, 255])
        assert r == g2.version_table.data.merkle.roots_of([0, 255])


async def test_layout_change_moves_entries_and_retires_old_version(tmp_path: Path) -> None:
    # Node 4 starts as a gateway (no partitions); then it gets capacity: partitions move
    # to it, and back off node(s) that lose them.
    async with InprocCluster(tmp_path, n=4, rf=3, gateways=(3,)) as c:
        g1 = c.garages[0]
        await write_local(g1, g1.version_table, versions(400, 5))
        for g in c.garages:
            await repair_tables(g)
        storing = c.garages[:3]
        await until(lambda: all(len(contents(g, "version")) == 400 for g in storing))
        assert len(contents(c.garages[3], "version")) == 0
        s1 = g1.system
        h = s1.layout
        h.stage_role(c.nodes[3].id, NodeRole("z3", c.capacity), s1.clock)
        async with s1.layout_lock:
            h.apply(h.current.version + 1, s1.clock)
            s1.save_layout()
        await until(lambda: all(g.system.layout.current.version == 2 for g in c.garages))

        def placed_right() -> bool:
            for g in c.garages:
                if g.system.layout.min_stored != 2:
                    return False
                me = g.system.node_id
                for k in contents(g, "version"):
                    if me not in g.system.layout.current.nodes_of(k[0]):
                        return False
            return True

        # Trackers advance, version 1 is pruned everywhere, and every entry sits on
        # exactly its partition's nodes in version 2 (moved, then offloaded).
        await until(placed_right, within_s=90, what="entries moved, version 1 pruned")
        for g in c.garages:
            assert g.system.layout.trackers.sync[g.system.node_id] >= 2
        per_entry: dict[bytes, int] = {}
        for g in c.garages:
            for k in contents(g, "version"):
                per_entry[k] = per_entry.get(k, 0) + 1
        assert len(per_entry) == 400 and set(per_entry.values()) == {3}
        assert len(contents(c.garages[3], "version")) > 0
        assert sum(s.items_offloaded for g in c.garages for s in g.table_syncers) > 0


async def test_full_copy_tables_reach_every_node_including_gateways(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=2, gateways=(2,)) as c:
        g1 = c.garages[0]
        keys = [Key(f"GK{i:024x}", "s" * 64, name=(1, f"k{i}")) for i in range(20)]
        await write_local(g1, g1.key_table, keys)
        await repair_tables(g1)
        await until(lambda: all(len(contents(g, "key")) == 20 for g in c.garages),
                    what="keys everywhere")
        gw = c.garages[2]
        assert gw.key_table.data.read_entry(keys[3].key_id.encode(), b"") == keys[3]
        # The gateway keeps its full copy: it stores no partition of sharded tables, but
        # a pass on it never offloads keys.
        await repair_tables(gw)
        await until(lambda: all(s.current is None for s in gw.table_syncers))
        assert len(contents(gw, "key")) == 20


async def test_a_peer_a_pass_could_not_reach_is_caught_up_within_seconds(
        tmp_path: Path) -> None:
    """A pass that reached a quorum but not every peer (one refused, stayed up) retries
    that peer's partitions after seconds, not at the next full pass (10 min)."""
    async with InprocCluster(tmp_path, n=3, rf=3) as c:
        g1, _g2, g3 = c.garages
        s1 = next(s for s in g1.table_syncers if s.table.name == "version")
        s3 = next(s for s in g3.table_syncers if s.table.name == "version")
        await until(lambda: s1.current is None, what="first pass end")

        def refuse(raw: bytes) -> Any:
            raise RpcError("refusing entries for this test")
        s3.decode_item = refuse  # type: ignore[method-assign]
        await write_local(g1, g1.version_table, versions(60, 5))
        await repair_tables(g1)
        await until(lambda: s1.current is None and len(contents(c.garages[1], "version"))
                    == 60, what="pass with nodes 1 and 2")
        assert s1.catch_up.behind.get(g3.system.node_id), "node 3 should be behind"
        assert len(contents(g3, "version")) == 0
        del s3.decode_item  # node 3 accepts entries again; it never went down
        # Each refused retry doubled the wait (5 s, 10 s, ... at most 2 min): on a slow
        # machine the pass above lasts long enough for several, and one may still be in
        # flight (refused, so doubled once more). The retry after that must catch node 3 up.
        backoff = min(s1.catch_up.max_s, 2 * s1.catch_up.delay[g3.system.node_id])
        await until(lambda: len(contents(g3, "version")) == 60, within_s=backoff + 20,
                    what="catch-up of node 3")
        assert s1.catch_up.behind == {}


async def _lose_copies_then_catch_up(writer: Any, witness: Any, target: Any, seed: int,
                                     within_s: float) -> None:
    """`writer` writes 40 version entries while every copy it sends to `target` is lost;
    `witness` gets them, and `target` must get them within `within_s` once copies flow."""
    n = target.system.node_id
    s = next(s for s in writer.table_syncers if s.table.name == "version")
    before = [len(contents(g, "version")) for g in (witness, target)]
    lost = True
    real = writer.version_table._write_remote

    async def write_remote(to: str, raws: list[bytes], checked: bool, prio: int) -> None:
        if lost and to == n:
            raise RpcError("copy lost for this test")
        await real(to, raws, checked, prio)
    writer.version_table._write_remote = write_remote
    await writer.version_table.insert_many(versions(40, seed), checked=False)
    await until(lambda: len(contents(witness, "version")) == before[0] + 40,
                what="copy on the witness")
    assert len(contents(target, "version")) == before[1]
    # The failed copy is reported by a callback, right after the write returns.
    await until(lambda: bool(s.catch_up.behind.get(n)), within_s=5,
                what="target marked behind on the writer")
    lost = False
    await until(lambda: len(contents(target, "version")) == before[1] + 40,
                within_s=within_s, what="catch-up of the target")


async def test_a_copy_of_a_write_that_failed_is_caught_up_without_a_full_pass(
        tmp_path: Path) -> None:
    """A write acknowledged by a quorum whose copy to one node failed (a node restarted in
    less than a second, a dropped connection) reaches that node within seconds: the failed
    copy marks its partitions behind for that node, no full pass (10 min) needed."""
    async with InprocCluster(tmp_path, n=3, rf=3) as c:
        g1, g2, g3 = c.garages
        s1 = next(s for s in g1.table_syncers if s.table.name == "version")
        n3 = g3.system.node_id
        # Idle: the passes that nodes coming up start are over.
        await until(lambda: s1._up == {g2.system.node_id, n3} and s1.current is None
                    and not s1._want_next, what="passes at start over")
        passes = s1.passes
        await _lose_copies_then_catch_up(g1, g2, g3, 7, within_s=s1.catch_up.base_s + 20)
        assert s1.passes == passes and s1.current is None, "caught up without a full pass"
        await until(lambda: not s1.catch_up.behind, within_s=10, what="nothing left behind")


async def test_a_copy_missed_through_a_gateway_is_caught_up_by_the_owners(
        tmp_path: Path) -> None:
    """A gateway stores no partition, so it cannot sync the ones whose copy of its write
    failed on node 3: it hands them to the other owners, which hold the entries, and node 3
    gets them within seconds, without a full pass (it waited 10 min for one)."""
    async with InprocCluster(tmp_path, n=4, rf=3, gateways=(3,)) as c:
        g1, _g2, g3, gw = c.garages
        syncers = [next(s for s in g.table_syncers if s.table.name == "version")
                   for g in c.garages]
        await until(lambda: all(len(s._up) == 3 and s.current is None and not s._want_next
                                for s in syncers), what="passes at start over")
        passes = [s.passes for s in syncers]
        # The gateway's retry (after base_s) hands over; the owners' own (base_s later) syncs.
        await _lose_copies_then_catch_up(gw, g1, g3, 11,
                                         within_s=2 * syncers[3].catch_up.base_s + 20)
        assert [s.passes for s in syncers] == passes, "caught up without a full pass"
        await until(lambda: not any(s.catch_up.behind for s in syncers), within_s=20,
                    what="nothing left behind")


async def test_a_node_restarted_unseen_is_synced_when_its_link_comes_back(
        tmp_path: Path) -> None:
    """Node 3 restarts faster than node 1 polls its peers' state (once a second), having
    missed writes that left no failed copy on node 1 (e.g. made through a gateway). The
    new link alone makes node 1 run a pass, which brings node 3 the entries."""
    async with InprocCluster(tmp_path, n=3, rf=3) as c:
        g1, g2, g3 = c.garages
        s1 = next(s for s in g1.table_syncers if s.table.name == "version")
        await until(lambda: s1._up == {g2.system.node_id, c.nodes[2].id}
                    and s1.current is None and not s1._want_next, what="passes at start over")
        s1._poll_peers = lambda: None  # type: ignore[method-assign]  # never sees it down
        base = len(contents(g3, "version"))
        await c.nodes[2].stop()
        await write_local(g1, g1.version_table, versions(30, 9))
        g3 = (await c.restart(2)).garage
        await until(lambda: len(contents(g3, "version")) == base + 30, within_s=30,
                    what="entries on the restarted node")
