"""A block corrupted on disk is detected by its hash: never served as data."""

from __future__ import annotations

import os

import pytest

from pygarage.testing.node import GarageNode


def test_corrupted_block_is_not_served(private_node: GarageNode) -> None:
    private_node.start()
    key, secret = private_node.create_key()
    private_node.create_bucket("corrupt", key)
    s3 = private_node.s3(key, secret)
    body = os.urandom(2 * 1024 * 1024)  # random: stored uncompressed, 2 blocks
    s3.put_object(Bucket="corrupt", Key="k", Body=body)
    files = sorted(p for p in (private_node.root / "data").rglob("*") if p.is_file())
    assert len(files) == 2
    for f in files:
        raw = bytearray(f.read_bytes())
        raw[1000] ^= 0xFF
        f.write_bytes(bytes(raw))
    with pytest.raises(Exception) as e:
        s3.get_object(Bucket="corrupt", Key="k")["Body"].read()
    assert "503" in str(e.value) or "ServiceUnavailable" in str(e.value)
    assert any(p.name.endswith(".corrupted")
               for p in (private_node.root / "data").rglob("*"))
    log = private_node.log_path.read_text()
    assert "corrupted" in log and "Traceback" not in log


def test_corrupted_small_block_is_not_served(private_node: GarageNode) -> None:
    # A small block in the page cache is read on the event loop (util/nowait): a copy that
    # fails its check there is read again in a thread, which sets it aside.
    private_node.start()
    key, secret = private_node.create_key()
    private_node.create_bucket("corrupt", key)
    s3 = private_node.s3(key, secret)
    body = os.urandom(5000)  # above the inline threshold: one block file
    s3.put_object(Bucket="corrupt", Key="k", Body=body)
    assert s3.get_object(Bucket="corrupt", Key="k")["Body"].read() == body
    files = [p for p in (private_node.root / "data").rglob("*") if p.is_file()]
    assert len(files) == 1
    raw = bytearray(files[0].read_bytes())
    raw[100] ^= 0xFF
    files[0].write_bytes(bytes(raw))  # the new bytes are in the page cache
    with pytest.raises(Exception) as e:
        s3.get_object(Bucket="corrupt", Key="k")["Body"].read()
    assert "503" in str(e.value) or "ServiceUnavailable" in str(e.value)
    assert files[0].with_name(files[0].name + ".corrupted").exists()
    log = private_node.log_path.read_text()
    assert "corrupted" in log and "Traceback" not in log
