"""With data_fsync = false a power loss can leave a block file truncated under its final name:
a later upload of the same content must not trust it (deduplication checks length and hash)
and must write it again."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from pygarage.testing.node import GarageNode
from pygarage.util.ids import block_hash


def _block_file(node: GarageNode, data: bytes) -> Path:
    hx = block_hash(data).hex()
    found = list((node.root / "data").glob(f"{hx[:2]}/{hx[2:4]}/{hx}*"))
    assert len(found) == 1, found
    return found[0]


# "small": a block the write helper process stores (block/write_helper.py); the others
# go through the node's threads (plain) or the helper (compressed to a few KiB).
@pytest.mark.parametrize("kind", ["plain", "compressed", "small"])
def test_damaged_block_rewritten_by_same_content(node: GarageNode, s3: Any, bucket: str,
                                                 kind: str) -> None:
    if kind == "plain":
        data = os.urandom(200 * 1024)
    elif kind == "small":
        data = os.urandom(4096)
    else:  # compressible: stored as zstd
        data = (secrets.token_hex(16).encode() + b"\x00" * 4000) * 50
    s3.put_object(Bucket=bucket, Key="first", Body=data)
    path = _block_file(node, data)
    assert path.name.endswith(".zst") == (kind == "compressed")
    size = path.stat().st_size
    with open(path, "r+b") as f:  # as a power loss after the rename, before the data
        f.truncate(size // 2)
    s3.put_object(Bucket=bucket, Key="second", Body=data)
    assert _block_file(node, data).stat().st_size == size
    assert f"block {block_hash(data).hex()}: the file on disk was damaged" in \
        node.log_path.read_text()
    for key in ("second", "first"):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data


def test_sound_block_still_deduplicated(node: GarageNode, s3: Any, bucket: str) -> None:
    data = os.urandom(150 * 1024)
    s3.put_object(Bucket=bucket, Key="a", Body=data)
    path = _block_file(node, data)
    before = path.stat().st_ino
    s3.put_object(Bucket=bucket, Key="b", Body=data)
    assert _block_file(node, data).stat().st_ino == before  # not rewritten
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == data
