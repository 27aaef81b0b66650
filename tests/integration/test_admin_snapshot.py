"""Metadata snapshots against real server processes (LMDB and SQLite): CreateMetadataSnapshot
and `garage meta snapshot` write a consistent copy of the db that a node restored from it
serves (objects written after it are not there), the two newest are kept,
metadata_snapshots_dir is honoured and metadata_auto_snapshot_interval starts its worker."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from pygarage.model.snapshot import snapshot_names
from pygarage.testing.cluster import Cluster
from pygarage.testing.node import GarageNode


def _restore(node: GarageNode, engine: str, snap: Path) -> None:
    """What an operator does: stop the node, put the snapshot in place of the db."""
    meta = node.root / "meta"
    if engine == "lmdb":
        shutil.rmtree(meta / "db.lmdb")
        (meta / "db.lmdb").mkdir()
        shutil.copy(snap / "data.mdb", meta / "db.lmdb" / "data.mdb")
    else:
        for f in meta.glob("db.sqlite*"):  # a stale WAL must not be replayed on the copy
            f.unlink()
        shutil.copy(snap / "db.sqlite", meta / "db.sqlite")


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_snapshot_restores_the_same_entries(tmp_path: Path, engine: str) -> None:
    node = GarageNode(tmp_path / "n", db_engine=engine)
    node.start()
    try:
        creds = node.create_key("snap")
        name = "snap-" + secrets.token_hex(4)
        node.create_bucket(name, creds[0])
        s3 = node.s3(*creds)
        s3.put_object(Bucket=name, Key="small", Body=b"before")
        big = secrets.token_bytes(1_500_000)
        s3.put_object(Bucket=name, Key="big", Body=big)
        res = node.admin("CreateMetadataSnapshot", {"node": "self"}, {})
        assert res["error"] == {} and list(res["success"].values()) == [None]
        snaps = node.root / "meta" / "snapshots"
        [first] = snapshot_names(snaps)
        s3.put_object(Bucket=name, Key="after", Body=b"after")
        # The CLI; then a third snapshot: only the two newest are kept.
        r = node.cli("meta", "snapshot")
        assert r.stdout.splitlines()[1].endswith("Snapshot created"), r.stdout
        assert len(snapshot_names(snaps)) == 2
        r = node.cli("meta", "snapshot", "--all")
        assert "Snapshot created" in r.stdout
        names = snapshot_names(snaps)
        assert len(names) == 2 and first not in names
        assert not list(snaps.glob("*.tmp"))
    finally:
        node.stop()
    # Restore the newest snapshot (taken after "after"): everything is there.
    _restore(node, engine, snaps / names[-1])
    node.start()
    try:
        s3 = node.s3(*creds)
        assert s3.get_object(Bucket=name, Key="big")["Body"].read() == big
        assert s3.get_object(Bucket=name, Key="after")["Body"].read() == b"after"
    finally:
        node.stop()


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_snapshot_is_a_point_in_time(tmp_path: Path, engine: str) -> None:
    """A node restored from a snapshot has what was written before it, not after."""
    snaps = tmp_path / "elsewhere"
    node = GarageNode(tmp_path / "n", db_engine=engine,
                      extra=f'metadata_snapshots_dir = "{snaps}"')
    node.start()
    try:
        creds = node.create_key("snap")
        name = "snap-" + secrets.token_hex(4)
        node.create_bucket(name, creds[0])
        s3 = node.s3(*creds)
        s3.put_object(Bucket=name, Key="before", Body=b"before")
        node.cli("meta", "snapshot")
        s3.put_object(Bucket=name, Key="after", Body=b"after")
        s3.delete_object(Bucket=name, Key="before")
    finally:
        node.stop()
    assert not (node.root / "meta" / "snapshots").exists()
    [snap] = snapshot_names(snaps)
    _restore(node, engine, snaps / snap)
    node.start()
    try:
        s3 = node.s3(*creds)
        assert s3.get_object(Bucket=name, Key="before")["Body"].read() == b"before"
        with pytest.raises(ClientError):
            s3.get_object(Bucket=name, Key="after")
        log = (node.root / "server.log").read_text()
        assert "Traceback" not in log
    finally:
        node.stop()


def test_auto_snapshot_worker_runs_when_configured(tmp_path: Path) -> None:
    node = GarageNode(tmp_path / "n", extra='metadata_auto_snapshot_interval = "6h"')
    node.start()
    try:
        r = node.cli("worker", "list")
        assert "Metadata snapshot worker" in r.stdout
    finally:
        node.stop()
    bad = GarageNode(tmp_path / "bad", extra='metadata_auto_snapshot_interval = "5m"')
    with pytest.raises(RuntimeError, match="too small"):
        bad.start()


def test_snapshot_all_nodes(tmp_path: Path) -> None:
    """`meta snapshot --all` through one node: every node snapshots its own db."""
    c = Cluster(tmp_path)
    try:
        both = c.start_connected(2)
        n1, n2 = c.nodes
        r = n2.cli("meta", "snapshot", "--all")
        assert sorted(r.stdout.splitlines()[1:]) == sorted(
            f"{i[:16]}  Snapshot created" for i in both), r.stdout
        for n in c.nodes:
            [snap] = snapshot_names(n.root / "meta" / "snapshots")
            assert (n.root / "meta" / "snapshots" / snap / "data.mdb").is_file()
        r = n1.cli("meta", "snapshot")  # this node only
        assert r.stdout.count("Snapshot created") == 1
        assert len(snapshot_names(n1.root / "meta" / "snapshots")) == 2
        assert len(snapshot_names(n2.root / "meta" / "snapshots")) == 1
    finally:
        c.stop()


def test_snapshot_failure_is_reported_not_a_500(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    node = GarageNode(tmp_path / "n", extra=f'metadata_snapshots_dir = "{blocker}"')
    node.start()
    try:
        res = node.admin("CreateMetadataSnapshot", {"node": "self"}, {})
        assert res["success"] == {} and "snapshot failed" in next(iter(res["error"].values()))
        r = node.cli("meta", "snapshot", check=False)
        assert r.returncode == 1 and "1 nodes returned an error" in r.stderr
        assert "Error: metadata snapshot failed" in r.stdout and "Traceback" not in r.stderr
        assert "Traceback" not in (node.root / "server.log").read_text()
    finally:
        node.stop()
