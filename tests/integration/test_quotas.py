"""Bucket quotas against a real server: `garage bucket set-quotas` is enforced on PutObject
(inline, one block, many blocks), CopyObject and CompleteMultipartUpload with Garage's 403,
overwrites replace the old object's count and size, and usage shows in `bucket info` and
the admin API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient

from pygarage.testing.node import GarageNode


def quotas(node: GarageNode, bucket: str, *args: str) -> None:
    node.cli("bucket", "set-quotas", bucket, *args)


def info(node: GarageNode, bucket: str) -> dict[str, Any]:
    return dict(node.admin("GetBucketInfo", {"globalAlias": bucket}))


def refused(exc: pytest.ExceptionInfo[ClientError]) -> str:
    err = exc.value.response["Error"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err["Code"] == "AccessDenied"
    return str(err["Message"])


def test_the_issue_scenario_is_refused(node: GarageNode, s3: Any, bucket: str) -> None:
    # Accepted and ignored before: three 100-byte PUTs went through.
    quotas(node, bucket, "--max-objects", "1", "--max-size", "10")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 100)
    assert refused(e).startswith("Forbidden: Bucket size quota is reached, maximum total "
                                 "size of objects for this bucket: 10.")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_max_objects(node: GarageNode, s3: Any, bucket: str, raw: RawClient) -> None:
    quotas(node, bucket, "--max-objects", "1")
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 100)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="b", Body=b"x" * 100)
    assert refused(e) == ("Forbidden: Object quota is reached, maximum objects for this "
                          "bucket: 1")
    # Raw HTTP: the S3 XML error, as a client sees it.
    r = raw.request("PUT", f"/{bucket}/c", body=b"y" * 10)
    assert r.status == 403 and r.code == "AccessDenied"
    assert (r.text("Message") or "").startswith("Forbidden: Object quota is reached")
    # An overwrite does not add an object.
    s3.put_object(Bucket=bucket, Key="a", Body=b"z" * 300)
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"z" * 300
    # After a delete there is room again.
    s3.delete_object(Bucket=bucket, Key="a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"x")
    # Lifting the quota.
    quotas(node, bucket, "--max-objects", "none")
    s3.put_object(Bucket=bucket, Key="c", Body=b"x")
    assert info(node, bucket)["quotas"] == {"maxSize": None, "maxObjects": None}


def test_max_size_counts_overwrites_as_replacements(node: GarageNode, s3: Any,
                                                     bucket: str) -> None:
    quotas(node, bucket, "--max-size", "250")
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 100)
    s3.put_object(Bucket=bucket, Key="b", Body=b"x" * 100)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"x" * 100)
    assert refused(e) == (
        "Forbidden: Bucket size quota is reached, maximum total size of objects for this "
        "bucket: 250. The bucket is already 200 bytes, and this object would add 100 bytes.")
    # Replacing 100 bytes by 150 adds 50: fits (250). Then anything larger does not.
    s3.put_object(Bucket=bucket, Key="a", Body=b"y" * 150)
    with pytest.raises(ClientError):
        s3.put_object(Bucket=bucket, Key="a", Body=b"y" * 151)
    # Shrinking always passes, even when over quota after lowering it.
    quotas(node, bucket, "--max-size", "10")
    s3.put_object(Bucket=bucket, Key="a", Body=b"y")
    i = info(node, bucket)
    assert (i["objects"], i["bytes"]) == (2, 101)
    assert i["quotas"] == {"maxSize": 10, "maxObjects": None}


def test_large_put_over_quota_leaves_nothing(node: GarageNode, s3: Any, bucket: str) -> None:
    quotas(node, bucket, "--max-size", "1M")
    for size in (1_500_000, 3 * 1024 * 1024):  # one block over quota, then many blocks
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="big", Body=b"b" * size)
        assert "Bucket size quota is reached" in refused(e)
    i = info(node, bucket)
    assert (i["objects"], i["bytes"], i["unfinishedUploads"]) == (0, 0, 0)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="big")
    s3.put_object(Bucket=bucket, Key="small", Body=b"s" * 900_000)
    assert info(node, bucket)["bytes"] == 900_000


def test_copy_object(node: GarageNode, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"s" * 4000)
    quotas(node, bucket, "--max-objects", "1")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert "Object quota is reached" in refused(e)
    # Onto itself (new metadata) replaces the object: allowed.
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"k": "v"})
    quotas(node, bucket, "--max-objects", "none", "--max-size", "5000")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert "Bucket size quota is reached" in refused(e)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["src"]


def _upload_7_mib(s3: Any, bucket: str) -> tuple[str, list[dict[str, Any]]]:
    """An upload of "mpu" with parts of 5 and 2 MiB, not completed: (its id, its parts)."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="mpu", UploadId=up, PartNumber=n,
                            Body=b"p" * (5 * 1024 * 1024 if n == 1 else 2 * 1024 * 1024)
                            )["ETag"] for n in (1, 2)]
    return up, [{"PartNumber": n, "ETag": t} for n, t in zip((1, 2), etags, strict=True)]


def test_complete_multipart_upload(node: GarageNode, s3: Any, bucket: str) -> None:
    quotas(node, bucket, "--max-size", "6M")
    up, parts = _upload_7_mib(s3, bucket)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up,
                                     MultipartUpload={"Parts": parts})
    assert "Bucket size quota is reached" in refused(e)
    # As in Garage, the upload is aborted: its parts are freed.
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    i = info(node, bucket)
    assert (i["objects"], i["bytes"], i["unfinishedUploads"]) == (0, 0, 0)
    # Within the quota, it completes.
    quotas(node, bucket, "--max-size", "8M")
    up, parts = _upload_7_mib(s3, bucket)
    s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up,
                                 MultipartUpload={"Parts": parts})
    assert info(node, bucket)["bytes"] == 7 * 1024 * 1024


def test_bucket_info_shows_usage_and_quotas(node: GarageNode, s3: Any, bucket: str) -> None:
    quotas(node, bucket, "--max-objects", "4", "--max-size", "1000")
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 100)
    s3.put_object(Bucket=bucket, Key="b", Body=b"x" * 150)
    s3.create_multipart_upload(Bucket=bucket, Key="pending")
    i = info(node, bucket)
    assert (i["objects"], i["bytes"], i["unfinishedUploads"]) == (2, 250, 1)
    assert i["unfinishedMultipartUploads"] == 1
    assert i["quotas"] == {"maxSize": 1000, "maxObjects": 4}
    out = node.cli("bucket", "info", bucket).stdout
    assert "Size: 250 B (250 bytes)  (25% of quota)" in out
    assert "Objects: 2  (50% of quota)" in out
    assert "Unfinished uploads: 1" in out
    assert "Max size: 1.0 KB" in out and "Max objects: 4" in out


def _update(node: GarageNode, bucket_id: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{node.admin_port}/v2/UpdateBucket?id={bucket_id}",
        data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {node.admin_token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("bad", [-1, 2**64, True, "10", 1.5])
def test_admin_update_bucket_refuses_bad_quotas(node: GarageNode, bucket: str,
                                                bad: Any) -> None:
    bid = info(node, bucket)["id"]
    status, body = _update(node, bid, {"quotas": {"maxSize": bad, "maxObjects": None}})
    assert status == 400, body
    assert "maxSize" in body["message"]
    assert info(node, bucket)["quotas"] == {"maxSize": None, "maxObjects": None}


def test_admin_update_bucket_sets_quotas(node: GarageNode, s3: Any, bucket: str) -> None:
    bid = info(node, bucket)["id"]
    status, body = _update(node, bid, {"quotas": {"maxSize": 2**64 - 1, "maxObjects": 0}})
    assert status == 200 and body["quotas"] == {"maxSize": 2**64 - 1, "maxObjects": 0}
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="a", Body=b"")
    assert "maximum objects for this bucket: 0" in refused(e)


def test_sse_c_and_post_object_writes_are_counted(node: GarageNode, s3: Any,
                                                  bucket: str) -> None:
    # These writes take another path (object_writer): the quota must hold there too.
    import os

    import requests
    sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": os.urandom(32)}
    quotas(node, bucket, "--max-objects", "1")
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 100, **sse)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="b", Body=b"x" * 100, **sse)
    assert refused(e).startswith("Forbidden: Object quota is reached")
    p = s3.generate_presigned_post(bucket, "c")
    r = requests.post(p["url"], data=p["fields"], files={"file": ("c", b"hi")}, timeout=30)
    assert r.status_code == 403 and b"Object quota is reached" in r.content
    with pytest.raises(ClientError) as e:  # a re-encrypting copy
        s3.copy_object(Bucket=bucket, Key="d", CopySource={"Bucket": bucket, "Key": "a"},
                       CopySourceSSECustomerAlgorithm="AES256",
                       CopySourceSSECustomerKey=sse["SSECustomerKey"])
    refused(e)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a"]
