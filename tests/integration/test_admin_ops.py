"""Admin operations against real server processes: CleanupIncompleteUploads (aborts only
uploads older than the limit, multipart and interrupted PutObject uploads, and frees their
blocks), InspectObject (every version: delete marker, inline, blocks, multipart parts) and
their CLI commands; bad bodies are 400s."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from s3helpers import RawClient, head_lines

from pygarage.testing.node import GarageNode
from pygarage.util.clock import OFFSET_ENV

DAY = 86_400
MIB = 1024 * 1024


def admin_error(node: GarageNode, endpoint: str, query: dict[str, str] | None = None,
                body: Any = None) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as ei:
        node.admin(endpoint, query, body)
    return ei.value.code, json.loads(ei.value.read())["code"]


def bucket_id(node: GarageNode, name: str) -> str:
    return str(node.admin("GetBucketInfo", {"globalAlias": name})["id"])


def inspect(node: GarageNode, bid: str, key: str) -> dict[str, Any]:
    res: dict[str, Any] = node.admin("InspectObject", {"bucketId": bid, "key": key})
    return res


def block_hashes(info: dict[str, Any]) -> set[str]:
    return {b["hash"] for v in info["versions"] for b in v.get("blocks", [])}


def block_files(root: Path) -> set[str]:
    return {p.name.split(".")[0] for p in (root / "data").rglob("*") if p.is_file()}


def _restart(node: GarageNode, monkeypatch: pytest.MonkeyPatch, secs: int) -> None:
    node.stop()
    monkeypatch.setenv(OFFSET_ENV, str(secs))
    node.start()


@pytest.fixture
def small_blocks_node(tmp_path: Path) -> Iterator[GarageNode]:
    """Blocks of 16 KiB: a PutObject lists its blocks in its version 8 at a time, so an
    interrupted one lists some of them with a few hundred KB sent."""
    n = GarageNode(tmp_path / "node", block_size="16KiB")
    yield n
    n.stop()


def test_cleanup_aborts_only_old_uploads_and_frees_blocks(
        small_blocks_node: GarageNode, monkeypatch: pytest.MonkeyPatch) -> None:
    node = small_blocks_node
    monkeypatch.delenv(OFFSET_ENV, raising=False)
    node.start()
    creds = node.create_key("cleanup")
    name, other = "cu-" + secrets.token_hex(4), "cu-other-" + secrets.token_hex(4)
    node.create_bucket(name, creds[0])
    node.create_bucket(other, creds[0])
    bid = bucket_id(node, name)
    s3 = node.s3(*creds)
    old_up = s3.create_multipart_upload(Bucket=name, Key="old/mpu")["UploadId"]
    s3.upload_part(Bucket=name, Key="old/mpu", UploadId=old_up, PartNumber=1,
                   Body=os.urandom(200_000))
    other_up = s3.create_multipart_upload(Bucket=other, Key="mpu")["UploadId"]
    s3.upload_part(Bucket=other, Key="mpu", UploadId=other_up, PartNumber=1,
                   Body=os.urandom(100_000))
    # A PutObject interrupted by a crash: blocks written and listed, then kill -9.
    raw = RawClient(node, creds)
    signed = raw.sign("PUT", f"/{name}/old/put", payload_hash="UNSIGNED-PAYLOAD")
    data = os.urandom(MIB)
    with raw.raw_socket() as sock:
        sock.sendall(head_lines("PUT", f"/{name}/old/put", {
            **signed.headers, "Content-Length": str(len(data))}) + data[:400_000])
        deadline = time.monotonic() + 30
        while len(_blocks_so_far(node, bid, "old/put")) < 8:
            assert time.monotonic() < deadline, inspect(node, bid, "old/put")
            time.sleep(0.1)
        node.kill()
    old_blocks = block_hashes(inspect_after_start(node, monkeypatch, bid, "old/put")) | \
        block_hashes(inspect(node, bid, "old/mpu"))
    assert len(old_blocks) >= 8 + 13 and old_blocks <= block_files(node.root)
    young_up = s3.create_multipart_upload(Bucket=name, Key="young/mpu")["UploadId"]
    s3.upload_part(Bucket=name, Key="young/mpu", UploadId=young_up, PartNumber=1,
                   Body=os.urandom(100_000))
    kept = block_hashes(inspect(node, bid, "young/mpu"))
    assert len(kept) == 7
    assert node.admin("GetBucketInfo", {"id": bid})["unfinishedMultipartUploads"] == 2

    res = node.admin("CleanupIncompleteUploads", body={"bucketId": bid, "olderThanSecs": DAY})
    assert res == {"uploadsDeleted": 2}
    uploads = s3.list_multipart_uploads(Bucket=name).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [young_up]
    for key in ("old/put", "old/mpu"):
        # The version entry (its block list) is deleted by the object table's cascade,
        # through an insert queue, just after the answer: wait for it, within bounds.
        deadline = time.monotonic() + 10
        while True:
            [v] = inspect(node, bid, key)["versions"]
            if "blocks" not in v or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert v["aborted"] and not v["uploading"] and "blocks" not in v, v
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=other)["Uploads"]] == \
        [other_up]
    # The CLI, Garage's wording: nothing that old is left in the first bucket.
    other_blocks = block_hashes(inspect(node, bucket_id(node, other), "mpu"))
    r = node.cli("bucket", "cleanup-incomplete-uploads", "--older-than", "1d", name, other)
    assert r.stdout.splitlines() == [f"{bid[:16]}: no uploads deleted",
                                     f"{bucket_id(node, other)[:16]}: 1 uploads deleted"]
    old_blocks |= other_blocks
    info = node.admin("GetBucketInfo", {"id": bid})
    assert (info["unfinishedUploads"], info["unfinishedMultipartUploadParts"]) == (1, 1)
    # Past the block GC delay (10 minutes): the aborted uploads' blocks are gone from disk,
    # the young upload's are kept.
    _restart(node, monkeypatch, 2 * DAY + 15 * 60)
    deadline = time.monotonic() + 30
    while old_blocks & block_files(node.root):
        assert time.monotonic() < deadline, old_blocks & block_files(node.root)
        time.sleep(0.1)
    assert kept <= block_files(node.root)
    # olderThanSecs 0: every upload, through the CLI.
    r = node.cli("bucket", "cleanup-incomplete-uploads", "--older-than", "0s", name)
    assert r.stdout.strip() == f"{bid[:16]}: 1 uploads deleted"
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    log = (node.root / "server.log").read_text()
    assert "Traceback" not in log


def _blocks_so_far(node: GarageNode, bid: str, key: str) -> set[str]:
    """The blocks an upload lists so far; none before its first entry exists (404)."""
    try:
        return block_hashes(inspect(node, bid, key))
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
        return set()


def inspect_after_start(node: GarageNode, monkeypatch: pytest.MonkeyPatch, bid: str,
                        key: str) -> dict[str, Any]:
    """Restart two days later; -> the interrupted upload, still Uploading."""
    monkeypatch.setenv(OFFSET_ENV, str(2 * DAY))
    node.start()
    info = inspect(node, bid, key)
    [v] = info["versions"]
    assert v["uploading"] and not v["multipart"] and v["size"] is None, v
    return info


@pytest.mark.parametrize("body", [
    None, [], {"bucketId": "00" * 32}, {"olderThanSecs": 1},
    {"bucketId": "00" * 32, "olderThanSecs": -1},
    {"bucketId": "00" * 32, "olderThanSecs": "1d"},
    {"bucketId": "00" * 32, "olderThanSecs": True},
    {"bucketId": "00" * 32, "olderThanSecs": 1.5},
    {"bucketId": "00" * 32, "olderThanSecs": 2**64},
    {"bucketId": "zz", "olderThanSecs": 1},
    {"bucketId": "00" * 31, "olderThanSecs": 1},
    {"bucketId": 5, "olderThanSecs": 1},
])
def test_cleanup_bad_bodies(node: GarageNode, body: Any) -> None:
    assert admin_error(node, "CleanupIncompleteUploads", body=body)[0] == 400


def test_cleanup_and_inspect_unknown_bucket_or_key(node: GarageNode, bucket: str) -> None:
    assert admin_error(node, "CleanupIncompleteUploads",
                       body={"bucketId": "00" * 32, "olderThanSecs": 0}) == (404, "NoSuchBucket")
    assert admin_error(node, "InspectObject", {"bucketId": "00" * 32, "key": "k"}) == \
        (404, "NoSuchBucket")
    bid = bucket_id(node, bucket)
    assert admin_error(node, "InspectObject", {"bucketId": bid, "key": "nope"}) == \
        (404, "NoSuchKey")
    assert admin_error(node, "InspectObject", {"bucketId": bid})[0] == 400
    assert admin_error(node, "InspectObject", {"key": "k"})[0] == 400
    assert admin_error(node, "InspectObject", {"bucketId": "xyz", "key": "k"})[0] == 400


def test_inspect_object_versions(node: GarageNode, s3: Any, bucket: str) -> None:
    bid = bucket_id(node, bucket)
    s3.put_object(Bucket=bucket, Key="small", Body=b"hello", ContentType="text/plain",
                  Metadata={"color": "blue"})
    [v] = inspect(node, bid, "small")["versions"]
    assert v["inline"] and v["size"] == 5 and v["etag"] == "5d41402abc4b2a76b9719d911017c592"
    assert ["x-amz-meta-color", "blue"] in v["headers"] and "blocks" not in v
    assert not (v["encrypted"] or v["uploading"] or v["aborted"] or v["deleteMarker"])

    big = os.urandom(MIB + 10)
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    [v] = inspect(node, bid, "big")["versions"]
    assert not v["inline"] and v["size"] == len(big)
    assert [(b["partNumber"], b["offset"], b["size"]) for b in v["blocks"]] == \
        [(0, 0, MIB), (0, MIB, 10)]

    # A delete marker, then a multipart upload in progress on the same key: its parts.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="k")
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for n, size in ((1, 300), (3, 200)):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=n, Body=b"p" * size)
    info = inspect(node, bid, "k")
    assert (info["bucketId"], info["key"]) == (bid, "k")
    marker, upload = info["versions"]
    assert marker["deleteMarker"] and marker["size"] is None and "blocks" not in marker
    assert upload["uploading"] and upload["multipart"] and upload["uuid"] != marker["uuid"]
    assert [(b["partNumber"], b["offset"], b["size"]) for b in upload["blocks"]] == \
        [(1, 0, 300), (3, 0, 200)]
    assert marker["timestamp"] <= upload["timestamp"]

    r = node.cli("bucket", "inspect-object", bucket, "k")
    assert r.stdout.count("==== OBJECT VERSION ====") == 2
    assert re.search(r"^Delete marker: +true$", r.stdout, re.M), r.stdout
    assert re.search(r"^Uploading: +true$", r.stdout, re.M)
    assert re.search(rf"^3 +0 +{upload['blocks'][1]['hash']} +200$", r.stdout, re.M)
    assert upload["uuid"] in r.stdout
    # Completed with part 3 alone: one version, its part renumbered 1.
    [part3] = [p for p in s3.list_parts(Bucket=bucket, Key="k", UploadId=up)["Parts"]
               if p["PartNumber"] == 3]
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 3, "ETag": part3["ETag"]}]})
    [v] = inspect(node, bid, "k")["versions"]
    assert v["multipart"] and v["size"] == 200 and v["etag"].endswith("-1")
    assert [(b["partNumber"], b["hash"]) for b in v["blocks"]] == \
        [(1, upload["blocks"][1]["hash"])]
    r = node.cli("bucket", "inspect-object", "--json", bucket, "k")
    assert json.loads(r.stdout)["versions"] == [v]
