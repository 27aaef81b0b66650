"""Merkle trees on a real node: after S3 traffic, and after kill -9 in the middle of a write
flood, the tree stored on disk equals one rebuilt from scratch from the table's entries
(checked offline on the stopped node's database)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pygarage.db.open import open_db
from pygarage.table import merkle
from pygarage.table.merkle_tree import TableMerkle
from pygarage.testing.merkle_check import check_merkle
from pygarage.testing.node import GarageNode


def _roots(node: GarageNode, engine: str, table: str = "object") -> list[bytes]:
    db = open_db(engine, node.root / "meta")
    try:
        db.open_tree(f"{table}:table")
        return TableMerkle(db, table, f"{table}:table").root_hashes()
    finally:
        db.close()


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_stored_tree_equals_a_rebuild_after_s3_traffic(tmp_path: Path, engine: str) -> None:
    node = GarageNode(tmp_path / engine, db_engine=engine)
    node.start()
    try:
        key, secret = node.create_key()
        node.create_bucket("mkl", key)
        s3 = node.s3(key, secret)
        for i in range(30):
            s3.put_object(Bucket="mkl", Key=f"small-{i}", Body=os.urandom(50))
        s3.put_object(Bucket="mkl", Key="big", Body=os.urandom(3 * 1024 * 1024))
        s3.put_object(Bucket="mkl", Key="small-1", Body=b"overwritten")
        for i in range(0, 30, 3):
            s3.delete_object(Bucket="mkl", Key=f"small-{i}")
        s3.copy_object(Bucket="mkl", Key="copy", CopySource={"Bucket": "mkl", "Key": "big"})
        up = s3.create_multipart_upload(Bucket="mkl", Key="mpu")["UploadId"]
        etag = s3.upload_part(Bucket="mkl", Key="mpu", UploadId=up, PartNumber=1,
                              Body=os.urandom(6 * 1024 * 1024))["ETag"]
        s3.complete_multipart_upload(Bucket="mkl", Key="mpu", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag}]})
        up2 = s3.create_multipart_upload(Bucket="mkl", Key="aborted")["UploadId"]
        s3.abort_multipart_upload(Bucket="mkl", Key="aborted", UploadId=up2)
    finally:
        node.stop()
    assert check_merkle(node.root / "meta", engine) == {}
    # The trees really hold entries: one bucket's objects share a partition; versions of
    # the multi-block objects (random uuids) and block refs (block hashes) spread out.
    assert sum(r != merkle.EMPTY_HASH for r in _roots(node, engine)) == 1
    assert sum(r != merkle.EMPTY_HASH for r in _roots(node, engine, "version")) >= 3
    assert sum(r != merkle.EMPTY_HASH for r in _roots(node, engine, "block_ref")) >= 5
    assert "merkle rebuild" not in node.log_path.read_text()  # kept in step, never rebuilt


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_kill9_mid_write_flood_leaves_a_consistent_tree(tmp_path: Path, engine: str) -> None:
    node = GarageNode(tmp_path / engine, db_engine=engine)
    node.start()
    key, secret = node.create_key()
    node.create_bucket("flood", key)
    stop = threading.Event()
    done = [0]

    def writer(w: int) -> None:
        s3 = node.s3(key, secret)
        i = 0
        while not stop.is_set():
            try:
                s3.put_object(Bucket="flood", Key=f"w{w}-{i % 40}", Body=os.urandom(100 + i))
                if i % 3 == 0:
                    s3.delete_object(Bucket="flood", Key=f"w{w}-{(i * 7) % 40}")
                done[0] += 1
            except Exception:  # the server dies under us
                return
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while done[0] < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        node.kill()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert done[0] >= 150
    # The tree as the crash left it: already consistent, nothing to repair.
    assert check_merkle(node.root / "meta", engine) == {}
    before = _roots(node, engine)

    node.start()
    try:
        s3: Any = node.s3(key, secret)
        assert "merkle rebuild" not in node.log_path.read_text()
        s3.put_object(Bucket="flood", Key="after", Body=b"x")
    finally:
        node.stop()
    assert check_merkle(node.root / "meta", engine) == {}
    assert _roots(node, engine) != before
    # The node defers its Merkle updates (records applied in batches): the records the
    # kill left were applied at startup, the later ones by the clean stop.
    assert _pending_records(node, engine) == 0


def _pending_records(node: GarageNode, engine: str) -> int:
    db = open_db(engine, node.root / "meta")
    try:
        total = 0
        for table in ("bucket", "bucket_alias", "key", "object", "version", "block_ref",
                      "multipart_upload"):
            db.open_tree(f"{table}:merkle_todo")
            total += db.tree_len(f"{table}:merkle_todo")
        return total
    finally:
        db.close()


def test_database_from_before_merkle_trees_is_rebuilt_at_startup(tmp_path: Path) -> None:
    node = GarageNode(tmp_path / "old")
    node.start()
    try:
        key, secret = node.create_key()
        node.create_bucket("old", key)
        s3 = node.s3(key, secret)
        for i in range(20):
            s3.put_object(Bucket="old", Key=f"o{i}", Body=b"x" * i)
    finally:
        node.stop()
    good = _roots(node, "lmdb")
    # Turn it into a database written by a build without Merkle trees.
    db = open_db("lmdb", node.root / "meta")
    try:
        names = ["bucket", "bucket_alias", "key", "object", "version", "block_ref",
                 "multipart_upload"]
        for name in names:
            tree = f"{name}:merkle"
            db.open_tree(tree)
            db.open_tree("merkle:state")

            def drop(tx: Any, tree: str = tree, name: str = name) -> None:
                for k, _v in tx.range(tree):
                    tx.remove(tree, k)
                tx.remove("merkle:state", name.encode())
            db.transaction(drop)
    finally:
        db.close()
    assert set(check_merkle(node.root / "meta", "lmdb")) >= {"object", "bucket", "key"}

    node.start()
    try:
        log = node.log_path.read_text()
        assert "merkle rebuild of object: done, 20 entries" in log
        assert node.s3(key, secret).get_object(Bucket="old", Key="o3")["Body"].read() == b"xxx"
    finally:
        node.stop()
    assert check_merkle(node.root / "meta", "lmdb") == {}
    assert _roots(node, "lmdb") == good
