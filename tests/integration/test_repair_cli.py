"""`garage repair`, `garage worker` and `garage stats` against a real server: repairs run as
workers whose progress shows in `worker list`, and fix what they are meant to fix; worker
variables round-trip, persist and refuse what they do not know."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import msgpack

from pygarage.db.open import open_db
from pygarage.model.garage import Garage
from pygarage.model.s3.block_ref_table import BlockRef
from pygarage.model.s3.mpu_table import MultipartUpload
from pygarage.model.s3.version_table import Version, VersionBlock
from pygarage.testing.node import GarageNode
from pygarage.util.config import load_config
from pygarage.util.ids import gen_uuid


def block_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data").rglob("*")
                  if p.is_file() and re.fullmatch(r"[0-9a-f]{64}(\.zst)?", p.name))


def wait_worker_done(node: GarageNode, name: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        res = node.admin("ListWorkers", {"node": "self"}, {})
        workers = next(iter(res["success"].values()))
        done = [w for w in workers if w["name"] == name and w["state"] == "done"]
        if done:
            return dict(done[-1])
        assert time.monotonic() < deadline, workers
        time.sleep(0.1)


def refcount(node: GarageNode, h: str) -> int:
    r = node.cli("block", "info", h)
    m = re.search(r"Refcount: (\d+)", r.stdout)
    assert m, r.stdout
    return int(m.group(1))


def test_block_rc_repair_fixes_wrong_refcounts(private_node: GarageNode) -> None:
    node = private_node
    node.start()
    key, secret = node.create_key()
    node.create_bucket("rcfix", key)
    s3 = node.s3(key, secret)
    s3.put_object(Bucket="rcfix", Key="a", Body=os.urandom(300_000))
    s3.put_object(Bucket="rcfix", Key="b", Body=os.urandom(300_000))
    hashes = [p.name.split(".")[0] for p in block_files(node.root)]
    assert len(hashes) == 2 and all(refcount(node, h) == 1 for h in hashes)
    node.stop()
    # Damage the refcounts behind the server's back: one too high, one dropped to zero.
    db = open_db("lmdb", node.root / "meta")
    db.open_tree("block_local_rc")
    db.transaction(lambda tx: tx.insert("block_local_rc", bytes.fromhex(hashes[0]),
                                        msgpack.packb((5, 0))))
    db.transaction(lambda tx: tx.remove("block_local_rc", bytes.fromhex(hashes[1])))
    # The resync checks the PUTs queued (due 10 s later) would fix the counts on their own:
    # drop them, as if they had run long ago, so that only the repair can.
    db.open_tree("block_resync_queue")
    db.transaction(lambda tx: [tx.remove("block_resync_queue", k) for k, _ in
                               tx.range("block_resync_queue", None, None, None)])
    db.close()
    node.start()
    assert refcount(node, hashes[0]) == 5 and refcount(node, hashes[1]) == 0
    r = node.cli("repair", "--yes", "block-rc")
    assert "Repair operation launched" in r.stdout
    w = wait_worker_done(node, "Block refcount repair worker")
    assert w["progress"] == "2 (2)"  # 2 blocks seen, 2 fixed
    assert [refcount(node, h) for h in hashes] == [1, 1]
    # The objects are intact and the counts stay right: a second pass fixes nothing.
    assert s3.get_object(Bucket="rcfix", Key="b")["Body"].read()
    node.cli("repair", "--yes", "block-rc")
    time.sleep(0.5)
    lines = node.cli("worker", "list").stdout.splitlines()
    rc_lines = [ln for ln in lines if "Block refcount repair worker" in ln]
    assert len(rc_lines) == 2 and all(" done " in ln for ln in rc_lines)
    assert any("2 (0)" in ln for ln in rc_lines), lines


def test_table_repairs_delete_orphans(private_node: GarageNode) -> None:
    """A version no object uses, a block_ref whose version is gone and an upload no object
    has under way: versions, block-refs and mpu repairs delete them, and the cascade frees
    the block; what objects do use is untouched."""
    node = private_node
    node.start()
    key, secret = node.create_key()
    node.create_bucket("orphans", key)
    s3 = node.s3(key, secret)
    body = os.urandom(200_000)
    s3.put_object(Bucket="orphans", Key="live", Body=body)
    bucket_id = bytes.fromhex(node.admin("GetBucketInfo", {"globalAlias": "orphans"})["id"])
    node.stop()

    g = Garage(load_config(node.config_path))
    orphan_v, orphan_ref_v, upload = gen_uuid(), gen_uuid(), gen_uuid()
    blk = os.urandom(32)
    g.version_table.data.update_entry(Version(
        orphan_v, blocks={(0, 0): VersionBlock(blk, 10)},
        backlink=("object", bucket_id, "missing")))
    g.block_ref_table.data.update_entry(BlockRef(blk, orphan_v))
    g.block_ref_table.data.update_entry(BlockRef(os.urandom(32), orphan_ref_v))
    g.mpu_table.data.update_entry(MultipartUpload(upload, bucket_id, "never", 1))
    assert g.block_manager.rc.get(blk) == 1
    g.db.close()

    node.start()
    for what, name in (("versions", "version repair worker"),
                       ("block-refs", "block_ref repair worker"),
                       ("mpu", "multipart_upload repair worker")):
        node.cli("repair", "--yes", what)
        w = wait_worker_done(node, name)
        assert w["progress"].endswith("(1)") or what == "block-refs", (what, w)
    # block-refs: the orphan ref (its version never existed), and the one of the version
    # deleted by the versions repair if the cascade had not got there first.
    g_info = node.admin("GetBlockInfo", {"node": "self"}, {"blockHash": blk.hex()})
    assert next(iter(g_info["success"].values()))["refcount"] == 0
    assert s3.get_object(Bucket="orphans", Key="live")["Body"].read() == body
    uploads = s3.list_multipart_uploads(Bucket="orphans").get("Uploads", [])
    assert uploads == []


def test_worker_variables_round_trip_and_refusals(private_node: GarageNode) -> None:
    node = private_node
    node.start()
    r = node.cli("worker", "get")
    for var in ("scrub-tranquility", "scrub-last-completed", "scrub-next-run",
                "scrub-corruptions_detected", "lifecycle-last-completed"):
        assert var in r.stdout, r.stdout
    r = node.cli("worker", "set", "scrub-tranquility", "7")
    assert "scrub-tranquility set to 7" in r.stdout
    assert node.cli("worker", "get", "scrub-tranquility").stdout.split()[-1] == "7"
    for args, msg in ((["no-such-var", "1"], "unknown worker variable"),
                      (["scrub-tranquility", "fast"], "invalid value"),
                      (["scrub-tranquility", "100000"], "invalid value"),
                      (["scrub-last-completed", "2020-01-01"], "read-only"),
                      (["lifecycle-last-completed", "yesterday"], "invalid value")):
        r = node.cli("worker", "set", *args, check=False)
        assert r.returncode == 1 and msg in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = node.cli("worker", "get", "no-such-var", check=False)
    assert r.returncode == 1 and "unknown worker variable" in r.stderr
    # An earlier lifecycle-last-completed makes the daily pass run again now.
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert node.cli("worker", "get", "lifecycle-last-completed").stdout.split()[-1] == today
    node.cli("worker", "set", "lifecycle-last-completed", "2000-01-01")
    # One pass at start, one more after the variable was set back.
    deadline = time.monotonic() + 15
    while node.log_path.read_text().count(f"lifecycle pass of {today} done") < 2:
        assert time.monotonic() < deadline, "no second lifecycle pass"
        time.sleep(0.1)
    assert node.cli("worker", "get", "lifecycle-last-completed").stdout.split()[-1] == today
    assert node.log_path.read_text().count(f"lifecycle pass of {today} done") == 2
    # Kept across a restart.
    node.restart()
    assert node.cli("worker", "get", "scrub-tranquility").stdout.split()[-1] == "7"
    # The admin API: the same, per node.
    res = node.admin("SetWorkerVariable", {"node": "self"},
                     {"variable": "scrub-tranquility", "value": "2"})
    assert list(res["success"].values()) == [{"variable": "scrub-tranquility", "value": "2"}]
    res = node.admin("SetWorkerVariable", {"node": "self"}, {"variable": "x", "value": "2"})
    assert res["success"] == {} and "unknown worker variable" in json.dumps(res["error"])
    res = node.admin("GetWorkerVariable", {"node": "self"}, {})
    assert next(iter(res["success"].values()))["scrub-tranquility"] == "2"


def test_worker_info_and_stats_are_real(private_node: GarageNode) -> None:
    node = private_node
    node.start()
    key, secret = node.create_key()
    node.create_bucket("statsb", key)
    s3 = node.s3(key, secret)
    for i in range(3):
        s3.put_object(Bucket="statsb", Key=f"k{i}", Body=os.urandom(5000))
    out = node.cli("stats").stdout
    assert re.search(r"object\s+3\s+\d+\s+\d+\s+0\s", out), out
    # Columns Items, MklItems, MklTodo (Merkle updates the node's updater has not applied
    # yet: a moment after the writes, none), InsQueue.
    assert re.search(r"Table\s+Items\s+MklItems\s+MklTodo\s+InsQueue", out), out
    deadline = time.monotonic() + 10
    while not re.search(r"object\s+3\s+[1-9]\d*\s+0\s+0\s", out) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
        out = node.cli("stats").stdout
    assert re.search(r"object\s+3\s+[1-9]\d*\s+0\s+0\s", out), out
    assert re.search(r"block_ref\s+3\s", out), out
    assert "number of RC entries (~= number of blocks): 3" in out
    assert "bytes free of" in out
    lines = node.cli("worker", "list").stdout.splitlines()
    assert any("object Merkle" in ln for ln in lines), lines
    scrub = next(ln for ln in lines if "Block scrub worker" in ln)
    tid = scrub.split()[0]
    info = node.cli("worker", "info", tid).stdout
    assert "Worker name: Block scrub worker" in info and "Tranquility: 4" in info
    assert "Next scrub scheduled for" in info
    r = node.cli("worker", "info", "999", check=False)
    assert r.returncode == 1 and "no worker with id 999" in r.stderr
    r = node.cli("repair", "--yes", "scrub", "pause", check=False)
    assert r.returncode == 1 and "no scrub is under way" in r.stderr
