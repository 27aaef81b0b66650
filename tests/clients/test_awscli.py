"""The aws CLI (v1) against a real garage server: high-level `s3` and low-level `s3api`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from client_helpers import client_env, make_tree, md5, require_binary, run, tree_digest

from pygarage.testing.node import GarageNode

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def aws_bin() -> str:
    return require_binary("aws")


@pytest.fixture
def aws(aws_bin: str, node: GarageNode, creds: tuple[str, str], tmp_path: Path) -> Any:
    cfg = tmp_path / "aws-config"
    # max_attempts = 1: botocore retries BadDigest & co, which only slows expected failures.
    cfg.write_text("[default]\nregion = garage\nmax_attempts = 1\n"
                   "s3 =\n    addressing_style = path\n")
    env = client_env({
        "AWS_ACCESS_KEY_ID": creds[0], "AWS_SECRET_ACCESS_KEY": creds[1],
        "AWS_DEFAULT_REGION": "garage", "AWS_CONFIG_FILE": str(cfg),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    })

    def call(*args: str, check: bool = True) -> Any:
        r = run([aws_bin, "--endpoint-url", node.endpoint, *args], env, node, check=check)
        if not check:
            return r
        out = r.stdout.strip()
        if args[0] == "s3api" and out:
            return json.loads(out)
        return out
    return call


def test_cp_small_and_multipart(aws: Any, bucket: str, tmp_path: Path, s3: Any) -> None:
    small = os.urandom(1234)
    big = os.urandom(9 * MiB + 4321)  # > 8 MiB multipart_threshold: goes multipart
    (tmp_path / "small.bin").write_bytes(small)
    (tmp_path / "big.bin").write_bytes(big)
    aws("s3", "cp", str(tmp_path / "small.bin"), f"s3://{bucket}/dir/small.bin")
    aws("s3", "cp", str(tmp_path / "big.bin"), f"s3://{bucket}/dir/big.bin")

    head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert head["ContentLength"] == len(big)
    assert head["ETag"].strip('"').endswith("-2")  # 8 MiB chunks: two parts
    assert s3.head_object(Bucket=bucket, Key="dir/small.bin")["ETag"] == f'"{md5(small)}"'

    aws("s3", "cp", f"s3://{bucket}/dir/big.bin", str(tmp_path / "big.out"))
    aws("s3", "cp", f"s3://{bucket}/dir/small.bin", str(tmp_path / "small.out"))
    assert (tmp_path / "big.out").read_bytes() == big
    assert (tmp_path / "small.out").read_bytes() == small

    listing = aws("s3", "ls", f"s3://{bucket}/dir/")
    rows = sorted((line.split()[2:] for line in listing.splitlines()), key=lambda r: r[1])
    assert rows == [[str(len(big)), "big.bin"], [str(len(small)), "small.bin"]]
    top = aws("s3", "ls", f"s3://{bucket}/")
    assert top.split() == ["PRE", "dir/"]
    buckets = aws("s3", "ls")
    assert bucket in buckets.split()

    url = aws("s3", "presign", f"s3://{bucket}/dir/small.bin", "--expires-in", "120")
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == small


def test_sync_both_ways_and_rm_recursive(aws: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {f"a/{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(5)}
    files.update({"b/c/deep.bin": os.urandom(70_000), "top.txt": b"top", "empty": b""})
    make_tree(src, files)
    out = aws("s3", "sync", str(src), f"s3://{bucket}/sync")
    assert out.count("upload:") == len(files)
    # Nothing changed: a second sync must not upload anything.
    assert "upload:" not in aws("s3", "sync", str(src), f"s3://{bucket}/sync")

    dst = tmp_path / "dst"
    aws("s3", "sync", f"s3://{bucket}/sync", str(dst))
    assert tree_digest(dst) == tree_digest(src)

    # Change one file, add one, delete one: sync --delete propagates all three.
    (src / "top.txt").write_bytes(b"top, changed and longer")
    (src / "new.txt").write_bytes(b"new")
    (src / "a/0.txt").unlink()
    aws("s3", "sync", "--delete", str(src), f"s3://{bucket}/sync")
    aws("s3", "sync", "--delete", f"s3://{bucket}/sync", str(dst))
    assert tree_digest(dst) == tree_digest(src)

    out = aws("s3", "rm", "--recursive", f"s3://{bucket}/sync")
    assert out.count("delete:") == len(tree_digest(src))
    assert aws("s3", "ls", "--recursive", f"s3://{bucket}/") == ""


def test_s3api_put_object_with_content_md5(aws: Any, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(9 * MiB + 1)  # above the CLI multipart threshold, one PUT
    f = tmp_path / "one.bin"
    f.write_bytes(data)
    digest = base64.b64encode(hashlib.md5(data).digest()).decode()
    r = aws("s3api", "put-object", "--bucket", bucket, "--key", "one/put.bin", "--body", str(f),
            "--content-md5", digest, "--content-type", "application/x-test",
            "--metadata", "color=blue")
    assert r["ETag"] == f'"{md5(data)}"'

    # A wrong Content-MD5 must be refused (BadDigest) and must not replace the object.
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    bad = aws("s3api", "put-object", "--bucket", bucket, "--key", "one/put.bin", "--body",
              str(tmp_path / "one.bin"), "--content-md5", wrong, check=False)
    assert bad.returncode != 0 and "BadDigest" in bad.stderr

    head = aws("s3api", "head-object", "--bucket", bucket, "--key", "one/put.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{md5(data)}"'
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"color": "blue"}

    out = tmp_path / "range.out"
    r = aws("s3api", "get-object", "--bucket", bucket, "--key", "one/put.bin",
            "--range", "bytes=1000-1099999", str(out))
    assert r["ContentLength"] == 1099000
    assert r["ContentRange"] == f"bytes 1000-1099999/{len(data)}"
    assert out.read_bytes() == data[1000:1100000]
    r = aws("s3api", "get-object", "--bucket", bucket, "--key", "one/put.bin",
            "--range", "bytes=-10", str(out))
    assert out.read_bytes() == data[-10:]

    missing = aws("s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr


def test_s3api_list_copy_and_buckets(aws: Any, bucket: str, tmp_path: Path,
                                     s3: Any) -> None:
    keys = [f"k/{i:02d}" for i in range(7)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())

    # --max-items paginates client-side: NextToken, then the rest.
    page = aws("s3api", "list-objects-v2", "--bucket", bucket, "--max-items", "3",
               "--page-size", "2")
    assert [o["Key"] for o in page["Contents"]] == keys[:3]
    assert page.get("NextToken")
    rest = aws("s3api", "list-objects-v2", "--bucket", bucket, "--page-size", "2",
               "--starting-token", page["NextToken"])
    assert [o["Key"] for o in rest["Contents"]] == keys[3:]
    deli = aws("s3api", "list-objects-v2", "--bucket", bucket, "--delimiter", "/")
    assert deli["CommonPrefixes"] == [{"Prefix": "k/"}]

    r = aws("s3api", "copy-object", "--bucket", bucket, "--key", "copied",
            "--copy-source", f"{bucket}/k/03")
    assert r["CopyObjectResult"]["ETag"] == f'"{md5(b"k/03")}"'
    assert s3.get_object(Bucket=bucket, Key="copied")["Body"].read() == b"k/03"
    r = aws("s3api", "copy-object", "--bucket", bucket, "--key", "copied2",
            "--copy-source", f"{bucket}/copied", "--metadata-directive", "REPLACE",
            "--content-type", "text/x-copied", "--metadata", "a=b")
    h = s3.head_object(Bucket=bucket, Key="copied2")
    assert h["ContentType"] == "text/x-copied" and h["Metadata"] == {"a": "b"}

    new = "cli-" + secrets.token_hex(5)
    aws("s3api", "create-bucket", "--bucket", new)
    assert new in [b["Name"] for b in aws("s3api", "list-buckets")["Buckets"]]
    aws("s3api", "head-bucket", "--bucket", new)
    aws("s3api", "put-object", "--bucket", new, "--key", "x", "--body", str(__file__))
    full = aws("s3api", "delete-bucket", "--bucket", new, check=False)
    assert full.returncode != 0 and "BucketNotEmpty" in full.stderr
    aws("s3api", "delete-object", "--bucket", new, "--key", "x")
    aws("s3api", "delete-bucket", "--bucket", new)
    assert new not in [b["Name"] for b in aws("s3api", "list-buckets")["Buckets"]]
    gone = aws("s3api", "head-bucket", "--bucket", new, check=False)
    assert gone.returncode != 0 and "404" in gone.stderr


def test_odd_key_and_out_of_order_multipart(aws: Any, bucket: str, tmp_path: Path,
                                            s3: Any) -> None:
    """As in garage's own smoke test: a key with odd characters, and parts sent out of
    order and re-sent (3, 2, 3, 6) then completed as 2, 3, 6."""
    key = '&+-é"/odd key?.bin'
    small = tmp_path / "small"
    small.write_bytes(b"odd")
    aws("s3", "cp", str(small), f"s3://{bucket}/{key}")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"odd"
    listed = aws("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "&+-")
    assert [o["Key"] for o in listed["Contents"]] == [key]
    aws("s3", "cp", f"s3://{bucket}/{key}", str(tmp_path / "odd.out"))
    assert (tmp_path / "odd.out").read_bytes() == b"odd"

    up = aws("s3api", "create-multipart-upload", "--bucket", bucket, "--key", key)["UploadId"]
    bodies = {"3a": os.urandom(5 * MiB), "2": os.urandom(5 * MiB), "3": os.urandom(5 * MiB),
              "6": os.urandom(1000)}
    etags = {}
    for name, data in bodies.items():
        f = tmp_path / f"part{name}"
        f.write_bytes(data)
        r = aws("s3api", "upload-part", "--bucket", bucket, "--key", key, "--upload-id", up,
                "--part-number", name[0], "--body", str(f))
        assert r["ETag"] == f'"{md5(data)}"'
        etags[name[0]] = r["ETag"]
    parts = aws("s3api", "list-parts", "--bucket", bucket, "--key", key, "--upload-id", up)
    assert [(p["PartNumber"], p["ETag"]) for p in parts["Parts"]] == \
        [(2, etags["2"]), (3, etags["3"]), (6, etags["6"])]
    done = {"Parts": [{"PartNumber": n, "ETag": etags[str(n)]} for n in (2, 3, 6)]}
    r = aws("s3api", "complete-multipart-upload", "--bucket", bucket, "--key", key,
            "--upload-id", up, "--multipart-upload", json.dumps(done))
    expected = bodies["2"] + bodies["3"] + bodies["6"]
    digests = b"".join(hashlib.md5(bodies[n]).digest() for n in ("2", "3", "6"))
    assert r["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-3"'
    out = tmp_path / "mp.out"
    aws("s3api", "get-object", "--bucket", bucket, "--key", key, str(out))
    assert out.read_bytes() == expected
    r = aws("s3api", "get-object", "--bucket", bucket, "--key", key, "--part-number", "2",
            str(out))
    assert out.read_bytes() == bodies["3"] and r["PartsCount"] == 3
