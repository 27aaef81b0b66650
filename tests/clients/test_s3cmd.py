"""s3cmd against a real garage server: signed hex-sha256 payloads, LocationConstraint on
`mb`, multipart with 5 MiB chunks, ETag == MD5 checks on get and sync."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from client_helpers import client_env, make_tree, md5, require_binary, run, tree_digest

from pygarage.testing.node import GarageNode

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3cmd_bin() -> str:
    return require_binary("s3cmd")


@pytest.fixture
def s3cmd(s3cmd_bin: str, node: GarageNode, creds: tuple[str, str], tmp_path: Path) -> Any:
    host = f"127.0.0.1:{node.s3_port}"
    conf = tmp_path / "s3cfg"
    conf.write_text(
        f"[default]\naccess_key = {creds[0]}\nsecret_key = {creds[1]}\n"
        f"host_base = {host}\nhost_bucket = {host}\nbucket_location = garage\n"
        "use_https = False\nsignature_v2 = False\ncheck_ssl_certificate = False\n"
        "proxy_host =\nproxy_port = 0\n")
    env = client_env({"HOME": str(tmp_path)})

    def call(*args: str, check: bool = True) -> Any:
        r = run([s3cmd_bin, "--config", str(conf), "--no-progress", *args], env, node,
                check=check)
        return r if not check else r.stdout
    return call


def test_bucket_put_get_info_del(s3cmd: Any, tmp_path: Path, s3: Any) -> None:
    bucket = "s3cmd-" + secrets.token_hex(4)
    s3cmd("mb", f"s3://{bucket}")
    assert bucket in s3cmd("ls")

    small = os.urandom(2000)
    big = os.urandom(11 * MiB + 5)
    (tmp_path / "small.bin").write_bytes(small)
    (tmp_path / "big.bin").write_bytes(big)
    s3cmd("put", str(tmp_path / "small.bin"), f"s3://{bucket}/small.bin",
          "--mime-type", "application/x-small", "--add-header", "x-amz-meta-tag:v1")
    s3cmd("put", "--multipart-chunk-size-mb=5", str(tmp_path / "big.bin"),
          f"s3://{bucket}/dir/big.bin")
    assert s3.head_object(Bucket=bucket, Key="dir/big.bin")["ETag"].strip('"').endswith("-3")

    top = s3cmd("ls", f"s3://{bucket}")
    assert "DIR" in top and f"s3://{bucket}/dir/" in top
    assert f"s3://{bucket}/small.bin" in top
    rec = s3cmd("ls", "-r", f"s3://{bucket}")
    sizes = {line.split()[-1]: int(line.split()[-2]) for line in rec.splitlines()}
    assert sizes == {f"s3://{bucket}/small.bin": len(small),
                     f"s3://{bucket}/dir/big.bin": len(big)}

    info = s3cmd("info", f"s3://{bucket}/small.bin")
    assert md5(small) in info
    assert "application/x-small" in info
    assert "x-amz-meta-tag: v1" in info
    binfo = s3cmd("info", f"s3://{bucket}")
    assert "Location:  garage" in binfo

    s3cmd("get", f"s3://{bucket}/small.bin", str(tmp_path / "small.out"))
    s3cmd("get", f"s3://{bucket}/dir/big.bin", str(tmp_path / "big.out"))
    assert (tmp_path / "small.out").read_bytes() == small
    assert (tmp_path / "big.out").read_bytes() == big

    du = s3cmd("du", f"s3://{bucket}")
    assert du.split()[0] == str(len(small) + len(big))

    notempty = s3cmd("rb", f"s3://{bucket}", check=False)
    assert notempty.returncode != 0 and "BucketNotEmpty" in notempty.stderr
    s3cmd("del", f"s3://{bucket}/small.bin")
    s3cmd("del", "--recursive", "--force", f"s3://{bucket}/dir")
    assert s3cmd("ls", "-r", f"s3://{bucket}").strip() == ""
    s3cmd("rb", f"s3://{bucket}")
    assert bucket not in s3cmd("ls")


def test_sync_both_ways(s3cmd: Any, bucket: str, tmp_path: Path, s3: Any) -> None:
    src = tmp_path / "src"
    files = {f"d{i}/f{j}.txt": f"{i}-{j}\n".encode() * (10 * j + 1)
             for i in range(3) for j in range(3)}
    files["blob.bin"] = os.urandom(300_000)
    make_tree(src, files)
    s3cmd("sync", str(src) + "/", f"s3://{bucket}/sync/")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"sync/{k}" for k in files}
    again = s3cmd("sync", str(src) + "/", f"s3://{bucket}/sync/")
    assert "upload:" not in again

    (src / "d0/f0.txt").write_bytes(b"changed")
    (src / "d1/f1.txt").unlink()
    s3cmd("sync", "--delete-removed", str(src) + "/", f"s3://{bucket}/sync/")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert "sync/d1/f1.txt" not in keys
    assert s3.get_object(Bucket=bucket, Key="sync/d0/f0.txt")["Body"].read() == b"changed"

    dst = tmp_path / "dst"
    dst.mkdir()
    s3cmd("sync", f"s3://{bucket}/sync/", str(dst) + "/")
    assert tree_digest(dst) == tree_digest(src)


def test_cp_mv_stdin_and_md5_listing(s3cmd_bin: str, s3cmd: Any, bucket: str,
                                     tmp_path: Path, s3: Any) -> None:
    data = os.urandom(7 * MiB + 3)  # from stdin: multipart of unknown size
    r = subprocess.run([s3cmd_bin, "--config", str(tmp_path / "s3cfg"), "--no-progress",
                        "--multipart-chunk-size-mb=5", "put", "-", f"s3://{bucket}/stdin.bin"],
                       input=data, capture_output=True, env=client_env({"HOME": str(tmp_path)}),
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert s3.get_object(Bucket=bucket, Key="stdin.bin")["Body"].read() == data

    (tmp_path / "m.txt").write_bytes(b"metadata kept")
    s3cmd("put", str(tmp_path / "m.txt"), f"s3://{bucket}/m.txt", "--mime-type", "text/x-m")
    s3cmd("cp", f"s3://{bucket}/m.txt", f"s3://{bucket}/copy/m.txt")
    s3cmd("mv", f"s3://{bucket}/m.txt", f"s3://{bucket}/moved/m.txt")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"stdin.bin", "copy/m.txt", "moved/m.txt"}
    for k in ("copy/m.txt", "moved/m.txt"):
        o = s3.get_object(Bucket=bucket, Key=k)
        assert o["Body"].read() == b"metadata kept" and o["ContentType"] == "text/x-m"

    listing = s3cmd("ls", "--list-md5", "-r", f"s3://{bucket}/copy/")
    assert md5(b"metadata kept") in listing
    # s3cmd stores the MD5 of multipart uploads in x-amz-meta-s3cmd-attrs.
    info = s3cmd("info", f"s3://{bucket}/stdin.bin")
    assert str(len(data)) in info
