"""The hot S3 paths keep decoded keys, buckets and aliases between requests
(pygarage.table.cache): a change made through the admin API must still apply to the very
next request. Single-block objects are answered in one response."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pygarage.testing.node import GarageNode


def _bucket_id(node: GarageNode, name: str) -> str:
    return str(node.admin("GetBucketInfo", query={"globalAlias": name})["id"])


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


@pytest.fixture
def own_key(node: GarageNode, bucket: str) -> tuple[str, str, Any]:
    """A key of this test's own, allowed on `bucket`, and a client for it."""
    key_id, secret = node.create_key("speed-" + secrets.token_hex(4))
    node.admin("AllowBucketKey", body={"bucketId": _bucket_id(node, bucket),
                                       "accessKeyId": key_id,
                                       "permissions": {"read": True, "write": True}})
    return key_id, secret, node.s3(key_id, secret)


def test_revoked_permission_applies_to_the_next_request(
        node: GarageNode, bucket: str, own_key: tuple[str, str, Any]) -> None:
    key_id, _, s3 = own_key
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 5000)
    for _ in range(3):  # served from the cache from now on
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 5000
    bid = _bucket_id(node, bucket)
    node.admin("DenyBucketKey", body={"bucketId": bid, "accessKeyId": key_id,
                                      "permissions": {"read": True}})
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert _code(e) == "AccessDenied"
    s3.put_object(Bucket=bucket, Key="k2", Body=b"still writable")  # write was kept
    node.admin("DenyBucketKey", body={"bucketId": bid, "accessKeyId": key_id,
                                      "permissions": {"write": True}})
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k3", Body=b"no")
    assert _code(e) == "AccessDenied"
    node.admin("AllowBucketKey", body={"bucketId": bid, "accessKeyId": key_id,
                                       "permissions": {"read": True}})
    assert s3.get_object(Bucket=bucket, Key="k2")["Body"].read() == b"still writable"


def test_deleted_key_is_refused_on_the_next_request(
        node: GarageNode, bucket: str, own_key: tuple[str, str, Any]) -> None:
    key_id, _, s3 = own_key
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    s3.get_object(Bucket=bucket, Key="k")
    node.admin("DeleteKey", query={"id": key_id}, body={})
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert _code(e) == "InvalidAccessKeyId"


def test_removed_and_added_aliases_apply_on_the_next_request(
        node: GarageNode, bucket: str, own_key: tuple[str, str, Any]) -> None:
    _, _, s3 = own_key
    other = "alias-" + secrets.token_hex(4)
    bid = _bucket_id(node, bucket)
    with pytest.raises(ClientError) as e:  # an unknown name: cached as unknown
        s3.head_object(Bucket=other, Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_object(Bucket=bucket, Key="k", Body=b"aliased")
    node.admin("AddBucketAlias", body={"bucketId": bid, "globalAlias": other})
    assert s3.get_object(Bucket=other, Key="k")["Body"].read() == b"aliased"
    node.admin("RemoveBucketAlias", body={"bucketId": bid, "globalAlias": other})
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=other, Key="k")
    assert _code(e) == "NoSuchBucket"
    # A name first seen pointing to the bucket (cached as such), then removed.
    third = "alias-" + secrets.token_hex(4)
    node.admin("AddBucketAlias", body={"bucketId": bid, "globalAlias": third})
    for _ in range(2):
        assert s3.get_object(Bucket=third, Key="k")["Body"].read() == b"aliased"
    node.admin("RemoveBucketAlias", body={"bucketId": bid, "globalAlias": third})
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=third, Key="k")
    assert _code(e) == "NoSuchBucket"


def test_deleted_bucket_is_gone_on_the_next_request(
        node: GarageNode, creds: tuple[str, str], s3: Any) -> None:
    name = "gone-" + secrets.token_hex(4)
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"1")
    s3.get_object(Bucket=name, Key="k")
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=name, Key="k", Body=b"2")
    assert _code(e) == "NoSuchBucket"


@pytest.mark.parametrize("size", [3072, 4096, 1 << 20])
def test_single_block_object_whole_and_ranged(s3: Any, bucket: str, size: int) -> None:
    """Objects of one block (up to block_size) are answered with a plain response: same
    headers, same bytes, ranges still 206."""
    data = secrets.token_bytes(size)
    s3.put_object(Bucket=bucket, Key="one", Body=data)
    r = s3.get_object(Bucket=bucket, Key="one")
    assert r["ContentLength"] == size
    assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert r["Body"].read() == data
    r = s3.get_object(Bucket=bucket, Key="one", Range="bytes=10-99")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == f"bytes 10-99/{size}"
    assert r["Body"].read() == data[10:100]


def test_object_of_several_blocks_smaller_than_block_size(tmp_path: Path) -> None:
    """Written with 64 KiB blocks, read after a restart with 1 MiB blocks: an object under
    the block size can still have several blocks, and GET must serve them all."""
    data = secrets.token_bytes(200_000)
    first = GarageNode(tmp_path / "n", block_size="64K")
    first.start()
    try:
        key_id, secret = first.create_key("k")
        first.create_bucket("small-blocks", key_id)
        first.s3(key_id, secret).put_object(Bucket="small-blocks", Key="o", Body=data)
    finally:
        first.stop()
    again = GarageNode(tmp_path / "n", block_size="1M")
    again.start()
    try:
        s3 = again.s3(key_id, secret)
        assert s3.get_object(Bucket="small-blocks", Key="o")["Body"].read() == data
        r = s3.get_object(Bucket="small-blocks", Key="o", Range="bytes=65000-140000")
        assert r["Body"].read() == data[65000:140001]
    finally:
        again.stop()
