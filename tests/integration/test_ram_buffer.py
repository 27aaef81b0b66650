"""block_ram_buffer_max bounds upload data held in memory across all requests: with a small
budget, concurrent multi-block uploads all finish with the right data (no deadlock), also
when a single block is larger than the whole budget."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pygarage.testing.node import GarageNode


def _free_kb(node: GarageNode) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.admin_port}/metrics", timeout=10) as r:
        m = re.search(rb"^block_ram_buffer_free_kb ([0-9.e+]+)$", r.read(), re.M)
    assert m is not None
    return int(float(m.group(1)))


@pytest.mark.parametrize(("block_size", "budget"), [("1MiB", "2MiB"), ("3MiB", "2MiB")])
def test_concurrent_uploads_within_budget(tmp_path: Path, block_size: str, budget: str) -> None:
    node = GarageNode(tmp_path / "n", block_size=block_size,
                      extra=f'block_ram_buffer_max = "{budget}"')
    node.start()
    try:
        assert _free_kb(node) == 2048
        key, secret = node.create_key()
        node.create_bucket("ram", key)
        bodies = [os.urandom(7 * 1024 * 1024 + i) for i in range(5)]
        errors: list[BaseException] = []
        low = [2048]
        done = threading.Event()

        def put(i: int) -> None:
            try:
                node.s3(key, secret).put_object(Bucket="ram", Key=f"o{i}", Body=bodies[i])
            except BaseException as e:
                errors.append(e)

        def watch() -> None:
            while not done.wait(0.05):
                free = _free_kb(node)
                if not 0 <= free <= 2048:
                    errors.append(AssertionError(f"free buffer out of bounds: {free} KiB"))
                low[0] = min(low[0], free)

        threads = [threading.Thread(target=put, args=(i,)) for i in range(len(bodies))]
        watcher = threading.Thread(target=watch)
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        done.set()
        watcher.join(10)
        assert not errors, errors
        s3: Any = node.s3(key, secret)
        for i, body in enumerate(bodies):
            got = s3.get_object(Bucket="ram", Key=f"o{i}")["Body"].read()
            assert hashlib.md5(got).digest() == hashlib.md5(body).digest()
        assert low[0] < 2048  # the budget was really used
        assert _free_kb(node) == 2048  # and all given back
    finally:
        node.stop()

