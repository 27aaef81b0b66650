"""Several data directories on a real server: blocks spread by capacity, a directory added
to the config keeps every object readable, `repair rebalance` moves the files to their
assigned directory, and a read-only directory is read but never written."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from pygarage.block.layout import DataLayout
from pygarage.testing.node import GarageNode


def set_data_dirs(node: GarageNode, spec: str) -> None:
    text = node.config_path.read_text()
    text = re.sub(r"^data_dir = .*$", lambda _m: f"data_dir = {spec}", text, flags=re.M)
    node.config_path.write_text(text)


def files_in(d: Path) -> dict[str, Path]:
    return {p.name.split(".")[0]: p for p in d.rglob("*")
            if p.is_file() and re.fullmatch(r"[0-9a-f]{64}(\.zst)?", p.name)}


def wait_done(node: GarageNode, name: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        res = node.admin("ListWorkers", {"node": "self"}, {})
        done = [w for w in next(iter(res["success"].values()))
                if w["name"] == name and w["state"] == "done"]
        if done:
            return dict(done[-1])
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_add_data_dir_then_rebalance(private_node: GarageNode) -> None:
    node = private_node
    d1, d2 = node.root / "d1", node.root / "d2"
    set_data_dirs(node, f'[{{ path = "{d1}", capacity = "1G" }}]')
    node.start()
    key, secret = node.create_key()
    node.create_bucket("spread", key)
    s3 = node.s3(key, secret)
    objs = {f"o{i}": os.urandom(20_000) for i in range(40)}
    objs["big"] = os.urandom(3 * 1024 * 1024 + 5)  # several blocks
    for k, v in objs.items():
        s3.put_object(Bucket="spread", Key=k, Body=v)
    before = files_in(d1)
    assert len(before) == 44
    node.stop()

    # A second, larger dir: it is assigned about 3/4 of the blocks.
    set_data_dirs(node, f'[{{ path = "{d1}", capacity = "1G" }}, '
                        f'{{ path = "{d2}", capacity = "3G" }}]')
    node.start()
    layout = DataLayout.decode((node.root / "meta" / "data_layout").read_bytes())
    assert layout.slot_counts() == [256, 768]
    # Not moved yet, and still readable (found in the former dir).
    assert files_in(d2) == {}
    for k, v in objs.items():
        assert s3.get_object(Bucket="spread", Key=k)["Body"].read() == v
    # New blocks go to their assigned dir right away.
    s3.put_object(Bucket="spread", Key="new", Body=os.urandom(20_000))
    objs["new"] = s3.get_object(Bucket="spread", Key="new")["Body"].read()

    node.cli("repair", "--yes", "rebalance")
    w = wait_done(node, "Block rebalance worker")
    m = re.search(r"Blocks moved: (\d+)", " ".join(w["freeform"]))
    assert m is not None, w
    moved = int(m.group(1))
    in1, in2 = files_in(d1), files_in(d2)
    # Every block once, in one dir only: the 44 older ones and the new one.
    assert set(before) <= set(in1) | set(in2) and len(set(in1) | set(in2)) == 45
    assert not set(in1) & set(in2)
    expect_d2 = {h for h in set(in1) | set(in2)
                 if layout.dirs[layout.primary(bytes.fromhex(h))].path == str(d2)}
    assert set(in2) == expect_d2 and moved == len(expect_d2 & set(before))
    assert 15 < len(in2) < 45  # about 3/4 of 45
    after = DataLayout.decode((node.root / "meta" / "data_layout").read_bytes())
    assert not after.has_secondaries() and after.prim == layout.prim
    for k, v in objs.items():
        assert s3.get_object(Bucket="spread", Key=k)["Body"].read() == v
    # And after a restart (the layout without secondaries is what is loaded).
    node.restart()
    for k, v in objs.items():
        assert s3.get_object(Bucket="spread", Key=k)["Body"].read() == v
    assert "Traceback" not in node.log_path.read_text()


def test_read_only_dir_is_read_not_written(private_node: GarageNode) -> None:
    node = private_node
    old, new = node.root / "old", node.root / "new"
    set_data_dirs(node, f'"{old}"')
    node.start()
    key, secret = node.create_key()
    node.create_bucket("rodir", key)
    s3 = node.s3(key, secret)
    body = os.urandom(50_000)
    s3.put_object(Bucket="rodir", Key="a", Body=body)
    node.stop()
    old_files = {p: p.read_bytes() for p in files_in(old).values()}
    set_data_dirs(node, f'[{{ path = "{old}", read_only = true }}, '
                        f'{{ path = "{new}", capacity = "1G" }}]')
    node.start()
    assert s3.get_object(Bucket="rodir", Key="a")["Body"].read() == body
    s3.put_object(Bucket="rodir", Key="b", Body=os.urandom(50_000))
    s3.delete_object(Bucket="rodir", Key="a")
    assert len(files_in(new)) == 1
    node.cli("repair", "--yes", "rebalance")
    wait_done(node, "Block rebalance worker")
    # Copied to the writable dir; the read-only dir is exactly as it was.
    assert {p: p.read_bytes() for p in files_in(old).values()} == old_files
    assert set(files_in(new)) >= {p.name for p in old_files}
