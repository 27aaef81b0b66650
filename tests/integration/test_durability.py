"""Crash safety with real processes: kill -9 mid-upload, restart, and check that every
acknowledged object is intact and no half-written object is visible."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

import pytest

from pygarage.testing.node import GarageNode


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_kill9_mid_upload_loses_nothing_acknowledged(tmp_path: Any, engine: str) -> None:
    node = GarageNode(tmp_path / engine, db_engine=engine)
    node.start()
    try:
        key, secret = node.create_key()
        node.create_bucket("crash", key)
        s3 = node.s3(key, secret)
        acked: dict[str, str] = {}
        for i in range(20):  # small (inline) and multi-block objects
            body = os.urandom(100 if i % 2 else 1024 * 1024 * 2 + i)
            s3.put_object(Bucket="crash", Key=f"obj-{i}", Body=body)
            acked[f"obj-{i}"] = _md5(body)

        # A large upload in flight when the process dies.
        big = os.urandom(48 * 1024 * 1024)
        result: dict[str, Any] = {}

        def upload() -> None:
            try:
                node.s3(key, secret).put_object(Bucket="crash", Key="in-flight", Body=big)
                result["ok"] = True
            except Exception as e:  # the connection dies with the server
                result["error"] = e

        t = threading.Thread(target=upload)
        t.start()
        blocks_dir = tmp_path / engine / "data"
        deadline = time.monotonic() + 20
        # Kill once some of its blocks reached the disk, so it really is mid-upload.
        while time.monotonic() < deadline and sum(1 for _ in blocks_dir.rglob("*")) < 40:
            time.sleep(0.01)
        node.kill()
        t.join(30)

        node.start()
        s3 = node.s3(key, secret)
        for k, digest in acked.items():
            assert _md5(s3.get_object(Bucket="crash", Key=k)["Body"].read()) == digest, k
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket="crash").get("Contents", [])}
        if result.get("ok"):
            # Acknowledged before the kill: must be complete and intact.
            assert "in-flight" in listed
            got = s3.get_object(Bucket="crash", Key="in-flight")["Body"].read()
            assert _md5(got) == _md5(big)
        else:
            assert "in-flight" not in listed
            with pytest.raises(Exception, match="NoSuchKey"):
                s3.get_object(Bucket="crash", Key="in-flight")
        assert listed - {"in-flight"} == set(acked)
        # And the node still takes writes.
        s3.put_object(Bucket="crash", Key="after", Body=b"alive")
        assert s3.get_object(Bucket="crash", Key="after")["Body"].read() == b"alive"
    finally:
        node.stop()


def test_restart_keeps_everything(private_node: GarageNode) -> None:
    private_node.start()
    key, secret = private_node.create_key()
    private_node.create_bucket("persist", key)
    body = os.urandom(3 * 1024 * 1024)
    private_node.s3(key, secret).put_object(Bucket="persist", Key="k", Body=body)
    private_node.restart()
    s3 = private_node.s3(key, secret)
    assert s3.get_object(Bucket="persist", Key="k")["Body"].read() == body
