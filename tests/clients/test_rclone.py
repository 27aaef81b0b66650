"""rclone against a real garage server: UNSIGNED-PAYLOAD + Content-MD5, multipart uploads
re-read with HEAD ?versionId=, MD5 checks of whole trees."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from client_helpers import client_env, make_tree, md5, require_binary, run, tree_digest

from pygarage.testing.node import GarageNode

MiB = 1024 * 1024


def _epoch(rfc3339: str) -> int:
    """Whole seconds of an rclone timestamp (any zone, up to nanosecond fractions)."""
    return int(datetime.fromisoformat(re.sub(r"\.\d+", "", rfc3339)
                                      .replace("Z", "+00:00")).timestamp())


@pytest.fixture(scope="module")
def rclone_bin() -> str:
    return require_binary("rclone")


@pytest.fixture
def rclone(rclone_bin: str, node: GarageNode, creds: tuple[str, str], tmp_path: Path) -> Any:
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        "[g]\ntype = s3\nprovider = Other\n"
        f"access_key_id = {creds[0]}\nsecret_access_key = {creds[1]}\n"
        f"endpoint = {node.endpoint}\nregion = garage\nlocation_constraint = garage\n"
        "force_path_style = true\n")
    env = client_env({"RCLONE_CONFIG": str(conf)})

    def call(*args: str, check: bool = True) -> Any:
        r = run([rclone_bin, "--retries", "1", "--low-level-retries", "1", *args], env, node,
                check=check, timeout=180)
        return r if not check else r.stdout
    return call


def test_copy_check_and_back(rclone: Any, node: GarageNode, creds: tuple[str, str],
                             tmp_path: Path, s3: Any) -> None:
    bucket = "rclone-" + os.urandom(4).hex()
    rclone("mkdir", f"g:{bucket}")  # rclone creates the bucket (LocationConstraint garage)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    src = tmp_path / "src"
    big = os.urandom(21 * MiB + 333)
    files = {f"small/{i}.txt": os.urandom(100 * i + 1) for i in range(6)}
    files.update({"big/huge.bin": big, "x/y/z.txt": b"deep", "name with spaces+&.txt": b"s"})
    make_tree(src, files)
    old = 1_500_000_000  # 2017-07-14T02:40:00Z: rclone keeps mtimes in x-amz-meta-mtime
    os.utime(src / "x/y/z.txt", (old, old))
    os.utime(src / "big/huge.bin", (old + 1, old + 1))
    rclone("copy", str(src), f"g:{bucket}/tree", "--s3-upload-cutoff", "5M",
           "--s3-chunk-size", "5M", "--transfers", "2")

    head = s3.head_object(Bucket=bucket, Key="tree/big/huge.bin")
    assert head["ContentLength"] == len(big)
    assert head["ETag"].strip('"').endswith("-5")  # 21 MiB in 5 MiB chunks
    # rclone stores the whole-file MD5 in metadata for multipart uploads.
    assert head["Metadata"].get("md5chksum")
    assert s3.head_object(Bucket=bucket, Key="tree/x/y/z.txt")["ETag"] == f'"{md5(b"deep")}"'

    listing = rclone("ls", f"g:{bucket}/tree")
    got = {line.split(maxsplit=1)[1]: int(line.split(maxsplit=1)[0])
           for line in listing.splitlines()}
    assert got == {k: len(v) for k, v in files.items()}

    entries = json.loads(rclone("lsjson", "-R", "--hash", f"g:{bucket}/tree"))
    objs = {e["Path"]: e for e in entries if not e["IsDir"]}
    assert set(objs) == set(files)
    for path, data in files.items():
        assert objs[path]["Size"] == len(data)
        assert objs[path]["Hashes"]["md5"] == md5(data), path
    assert _epoch(objs["x/y/z.txt"]["ModTime"]) == old
    assert _epoch(objs["big/huge.bin"]["ModTime"]) == old + 1
    dirs = {e["Path"] for e in entries if e["IsDir"]}
    assert {"small", "big", "x", "x/y"} <= dirs

    # check compares sizes and MD5s of both sides (multipart MD5 via metadata).
    out = rclone("check", str(src), f"g:{bucket}/tree", check=False)
    assert out.returncode == 0, out.stderr
    assert "0 differences found" in out.stderr

    back = tmp_path / "back"
    rclone("copy", f"g:{bucket}/tree", str(back))
    assert tree_digest(back) == tree_digest(src)
    assert (back / "big/huge.bin").read_bytes() == big
    assert int((back / "x/y/z.txt").stat().st_mtime) == old

    # A corrupted local copy is detected by check.
    (src / "small/3.txt").write_bytes(b"changed")
    bad = rclone("check", str(src), f"g:{bucket}/tree", check=False)
    assert bad.returncode != 0 and "1 differences found" in bad.stderr

    rclone("delete", f"g:{bucket}/tree/small")
    left = rclone("lsf", "-R", "--files-only", f"g:{bucket}/tree")
    assert sorted(left.split("\n")[:-1]) == sorted(k for k in files
                                                   if not k.startswith("small/"))

    rclone("purge", f"g:{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_sync_and_moveto(rclone: Any, bucket: str, tmp_path: Path, s3: Any) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"a", "b/c.txt": b"cc", "d.bin": os.urandom(4096)})
    rclone("sync", str(src), f"g:{bucket}/s")
    (src / "a.txt").unlink()
    (src / "b/c.txt").write_bytes(b"changed")
    rclone("sync", str(src), f"g:{bucket}/s")
    keys = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(keys) == {"s/b/c.txt", "s/d.bin"}
    assert s3.get_object(Bucket=bucket, Key="s/b/c.txt")["Body"].read() == b"changed"
    # Server-side move: CopyObject then DeleteObject.
    rclone("moveto", f"g:{bucket}/s/d.bin", f"g:{bucket}/moved.bin")
    keys2 = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys2 == {"s/b/c.txt", "moved.bin"}
    assert s3.get_object(Bucket=bucket, Key="moved.bin")["Body"].read() == \
        (src / "d.bin").read_bytes()
    out = rclone("cat", f"g:{bucket}/s/b/c.txt")
    assert out == "changed"


def test_rcat_stream_and_md5sum(rclone_bin: str, rclone: Any, bucket: str,
                                tmp_path: Path, s3: Any) -> None:
    """rcat: a stream of unknown size, uploaded multipart in 5 MiB chunks."""
    data = os.urandom(11 * MiB + 5)
    conf = tmp_path / "rclone.conf"  # written by the rclone fixture
    r = subprocess.run([rclone_bin, "rcat", "--s3-chunk-size", "5M", "--streaming-upload-cutoff",
                        "1M", f"g:{bucket}/streamed.bin"], input=data, capture_output=True,
                       env=client_env({"RCLONE_CONFIG": str(conf)}), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert s3.get_object(Bucket=bucket, Key="streamed.bin")["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="streamed.bin")["ETag"].strip('"').endswith("-3")
    s3.put_object(Bucket=bucket, Key="plain.txt", Body=b"plain")
    sums = dict(reversed(line.split("  ", 1))
                for line in rclone("md5sum", f"g:{bucket}/plain.txt").splitlines())
    assert sums == {"plain.txt": md5(b"plain")}
    got = subprocess.run([rclone_bin, "cat", f"g:{bucket}/streamed.bin", "--offset",
                          "5242870", "--count", "20"], capture_output=True,
                         env=client_env({"RCLONE_CONFIG": str(conf)}), timeout=60)
    assert got.returncode == 0 and got.stdout == data[5242870:5242890]
