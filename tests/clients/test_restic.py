"""restic against a real garage server: it creates its own bucket, uploads with signed
aws-chunked bodies (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) + Content-MD5, lists, reads ranges,
deletes on prune."""

from __future__ import annotations

import json
import os
import random
import secrets
from pathlib import Path
from typing import Any

import pytest
from client_helpers import client_env, make_tree, require_binary, run, tree_digest

from pygarage.testing.node import GarageNode

KiB = 1024


@pytest.fixture(scope="module")
def restic_bin() -> str:
    return require_binary("restic")


@pytest.fixture
def restic(restic_bin: str, node: GarageNode, creds: tuple[str, str], tmp_path: Path) -> Any:
    bucket = "restic-" + secrets.token_hex(4)
    env = client_env({
        "AWS_ACCESS_KEY_ID": creds[0], "AWS_SECRET_ACCESS_KEY": creds[1],
        "RESTIC_REPOSITORY": f"s3:{node.endpoint}/{bucket}/repo",
        "RESTIC_PASSWORD": "correct horse battery staple",
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path),
    })

    def call(*args: str, check: bool = True) -> Any:
        r = run([restic_bin, "-o", "s3.region=garage", "-o", "s3.bucket-lookup=path",
                 "--quiet", *args], env, node,
                check=check, timeout=180)
        return r if not check else r.stdout
    call.bucket = bucket  # type: ignore[attr-defined]
    return call


def _generate(root: Path, seed: int) -> None:
    rnd = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(40):
        files[f"text/{i % 5}/f{i}.txt"] = (f"line {i} " * rnd.randint(1, 400)).encode()
    for i in range(3):
        files[f"bin/r{i}.bin"] = os.urandom(rnd.randint(300 * KiB, 900 * KiB))
    files["bin/big.bin"] = os.urandom(2 * 1024 * KiB + 17)
    files["empty"] = b""
    make_tree(root, files)


def test_backup_check_restore_prune(restic: Any, tmp_path: Path, s3: Any) -> None:
    data = tmp_path / "data"
    _generate(data, 1)
    restic("init")
    bucket = restic.bucket
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "repo/config" in keys

    restic("backup", str(data))
    first = tree_digest(data)

    # Change some files, add and remove others, then back up again.
    (data / "text/0/f0.txt").write_bytes(b"modified\n")
    (data / "bin/r1.bin").write_bytes(os.urandom(500 * KiB))
    (data / "text/1/f1.txt").unlink()
    (data / "new.bin").write_bytes(os.urandom(700 * KiB))
    restic("backup", str(data))
    second = tree_digest(data)
    assert first != second

    snaps = json.loads(restic("snapshots", "--json"))
    assert len(snaps) == 2
    restic("check", "--read-data")

    # Restore both snapshots and compare every file.
    by_time = sorted(snaps, key=lambda s: s["time"])
    for snap, expected in zip(by_time, (first, second), strict=True):
        target = tmp_path / f"restore-{snap['short_id']}"
        restic("restore", snap["id"], "--target", str(target))
        assert tree_digest(target / data.relative_to("/")) == expected

    before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    restic("forget", "--keep-last", "1", "--prune")
    after_objs = []
    token: dict[str, str] = {}
    while True:
        page = s3.list_objects_v2(Bucket=bucket, **token)
        after_objs += page.get("Contents", [])
        if not page.get("IsTruncated"):
            break
        token = {"ContinuationToken": page["NextContinuationToken"]}
    after = {o["Key"] for o in after_objs}
    assert len([k for k in after if k.startswith("repo/snapshots/")]) == 1
    assert before - after, "prune deleted nothing"
    assert len(json.loads(restic("snapshots", "--json"))) == 1
    restic("check", "--read-data")

    target = tmp_path / "restore-latest"
    restic("restore", "latest", "--target", str(target))
    assert tree_digest(target / data.relative_to("/")) == second
