"""A real server with metadata_fsync = true, its metadata writes in the db writer thread:
concurrent requests' writes share commits, yet each is committed before it is answered
(kill -9 right after the answers loses none), a failed write (PUT into a bucket deleted
meanwhile) fails alone, and a SIGTERM with writes in flight shuts down cleanly."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pygarage.testing.node import GarageNode


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_concurrent_acknowledged_writes_survive_kill9(tmp_path: Path, engine: str) -> None:
    node = GarageNode(tmp_path / engine, db_engine=engine, extra="metadata_fsync = true")
    node.start()
    try:
        key, secret = node.create_key()
        node.create_bucket("fsync", key)
        clients = [node.s3(key, secret) for _ in range(16)]
        bodies = {f"obj-{i}": os.urandom(50 + i) for i in range(64)}

        def put(i_k: tuple[int, str]) -> None:
            i, k = i_k
            clients[i % 16].put_object(Bucket="fsync", Key=k, Body=bodies[k])
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(put, enumerate(bodies)))

        def delete(i: int) -> None:
            clients[i % 16].delete_object(Bucket="fsync", Key=f"obj-{i}")
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(delete, range(0, 64, 2)))
        node.kill()  # every answer above was sent: each write must be on disk

        node.start()
        s3 = node.s3(key, secret)
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket="fsync").get("Contents", [])}
        assert listed == {f"obj-{i}" for i in range(1, 64, 2)}
        for i in range(1, 64, 2):
            k = f"obj-{i}"
            assert _md5(s3.get_object(Bucket="fsync", Key=k)["Body"].read()) == _md5(bodies[k])
    finally:
        node.stop()


def test_puts_racing_a_bucket_deletion_fail_alone(tmp_path: Path) -> None:
    """PUTs into a bucket being deleted, and PUTs into another bucket, in the same moments
    (so in the same commits): only the former may fail, each with NoSuchBucket."""
    node = GarageNode(tmp_path / "n", extra="metadata_fsync = true")
    node.start()
    try:
        key, secret = node.create_key()
        node.create_bucket("stays", key)
        s3 = node.s3(key, secret)
        s3.create_bucket(Bucket="goes")
        results: dict[str, list[Any]] = {"stays": [], "goes": []}
        lock = threading.Lock()
        go = threading.Event()

        def put(i: int) -> None:
            c = node.s3(key, secret)
            go.wait(10)
            for b in ("goes", "stays"):
                try:
                    c.put_object(Bucket=b, Key=f"k{i}", Body=b"x" * 10)
                    r: Any = "ok"
                except ClientError as e:
                    r = e.response["Error"]["Code"]
                with lock:
                    results[b].append(r)

        threads = [threading.Thread(target=put, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        go.set()
        deleted = False
        for _ in range(50):
            try:
                s3.delete_bucket(Bucket="goes")
                deleted = True
                break
            except ClientError as e:
                assert e.response["Error"]["Code"] == "BucketNotEmpty"
                # Objects were written first: empty it and try again while PUTs go on.
                for o in s3.list_objects_v2(Bucket="goes").get("Contents", []):
                    s3.delete_object(Bucket="goes", Key=o["Key"])
        for t in threads:
            t.join(60)
        assert results["stays"] == ["ok"] * 24
        assert set(results["goes"]) <= {"ok", "NoSuchBucket"}
        if deleted:
            with pytest.raises(ClientError) as ei:
                s3.head_bucket(Bucket="goes")
            assert ei.value.response["Error"]["Code"] in ("404", "NoSuchBucket")
        assert len(s3.list_objects_v2(Bucket="stays").get("Contents", [])) == 24
    finally:
        node.stop()
    log = node.log_path.read_text()
    assert "Traceback" not in log


def test_sigterm_drains_the_writer_and_exits_cleanly(tmp_path: Path) -> None:
    """SIGTERM after a flood of writes whose last answers were just sent: the server exits
    with status 0 (the writer thread drained and joined before the db closed), and every
    acknowledged write is there after a restart.

    The clients close their connections first: with a keep-alive connection open, the HTTP
    layer waits for it (aiohttp's graceful shutdown), which is not what this test is about."""
    node = GarageNode(tmp_path / "n", extra="metadata_fsync = true")
    node.start()
    key, secret = node.create_key()
    node.create_bucket("sigterm", key)
    acked: list[str] = []

    def writer(n: int) -> None:
        c = node.s3(key, secret)
        for i in range(15):
            k = f"w{n}-{i}"
            c.put_object(Bucket="sigterm", Key=k, Body=b"z" * 10)
            acked.append(k)
        c.close()
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert node.proc is not None
    proc = node.proc
    node.stop()  # SIGTERM, waits up to 10 s, then kill -9
    assert proc.returncode == 0, node.log_path.read_text()[-3000:]
    log = node.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert len(acked) == 120
    node.start()
    try:
        s3 = node.s3(key, secret)
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket="sigterm")["Contents"]}
        assert listed == set(acked)
    finally:
        node.stop()
