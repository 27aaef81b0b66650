"""GetObjectAttributes against a real server, with boto3 and raw requests."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient

ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def test_simple_object(s3: Any, bucket: str) -> None:
    body = b"hello attributes"
    put = s3.put_object(Bucket=bucket, Key="o", Body=body, ChecksumAlgorithm="CRC32")
    r = s3.get_object_attributes(Bucket=bucket, Key="o", ObjectAttributes=ALL)
    assert r["ETag"] == hashlib.md5(body).hexdigest() == put["ETag"].strip('"')
    assert r["ObjectSize"] == len(body)
    assert r["StorageClass"] == "STANDARD"
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert r["Checksum"] == {"ChecksumCRC32": crc, "ChecksumType": "FULL_OBJECT"}
    assert "ObjectParts" not in r  # uploaded in one piece: no parts, as on AWS
    assert r["VersionId"] and r["LastModified"]
    only = s3.get_object_attributes(Bucket=bucket, Key="o", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == len(body) and "ETag" not in only and "Checksum" not in only


def test_multipart_parts_and_checksum(s3: Any, bucket: str) -> None:
    sizes = [5 * 1024 * 1024, 5 * 1024 * 1024, 1000]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")
    uid = up["UploadId"]
    parts = []
    for i, size in enumerate(sizes, start=1):
        p = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=i,
                           Body=os.urandom(size), ChecksumAlgorithm="SHA256")
        parts.append({"PartNumber": i, "ETag": p["ETag"],
                      "ChecksumSHA256": p["ChecksumSHA256"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                        MultipartUpload={"Parts": parts})
    r = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL)
    assert r["ETag"] == done["ETag"].strip('"') and r["ETag"].endswith("-3")
    assert r["ObjectSize"] == sum(sizes)
    assert r["Checksum"]["ChecksumSHA256"] == done["ChecksumSHA256"]
    assert r["Checksum"]["ChecksumType"] == "COMPOSITE"
    op = r["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and op["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"]) for p in op["Parts"]] == [(1, sizes[0]),
                                                                   (2, sizes[1]),
                                                                   (3, sizes[2])]
    assert [p["ChecksumSHA256"] for p in op["Parts"]] == [p["ChecksumSHA256"] for p in parts]
    # A copy keeps them.
    s3.copy_object(Bucket=bucket, Key="mp2", CopySource={"Bucket": bucket, "Key": "mp"})
    r2 = s3.get_object_attributes(Bucket=bucket, Key="mp2", ObjectAttributes=["ObjectParts"])
    assert r2["ObjectParts"]["Parts"] == op["Parts"]
    page = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                    MaxParts=1, PartNumberMarker=1)["ObjectParts"]
    assert [p["PartNumber"] for p in page["Parts"]] == [2]
    assert page["IsTruncated"] is True and page["NextPartNumberMarker"] == 2
    assert page["MaxParts"] == 1 and page["PartNumberMarker"] == 1
    last = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                    PartNumberMarker=2)["ObjectParts"]
    assert [p["PartNumber"] for p in last["Parts"]] == [3] and last["IsTruncated"] is False


def test_errors(s3: Any, raw: RawClient, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    for headers in ({}, {"x-amz-object-attributes": ""},
                    {"x-amz-object-attributes": "ETag,Bogus"},
                    {"x-amz-object-attributes": "etag"},
                    {"x-amz-object-attributes": "ETag", "x-amz-max-parts": "-1"},
                    {"x-amz-object-attributes": "ETag", "x-amz-part-number-marker": "x"}):
        r = raw.request("GET", f"/{bucket}/o", "attributes", headers=headers)
        assert (r.status, r.code) == (400, "InvalidArgument"), headers
    r = raw.request("GET", f"/{bucket}/o", "attributes",
                    headers={"x-amz-object-attributes": "ObjectSize, ETag"})
    assert r.status == 200 and r.text("ObjectSize") == "1"


def test_sse_c_object_needs_its_key(s3: Any, bucket: str) -> None:
    key = os.urandom(32)
    s3.put_object(Bucket=bucket, Key="enc", Body=b"secret", SSECustomerAlgorithm="AES256",
                  SSECustomerKey=key)
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="enc", ObjectAttributes=["ObjectSize"])
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    # botocore does not base64 the key for this operation (it does for GetObject).
    r = s3.get_object_attributes(
        Bucket=bucket, Key="enc", ObjectAttributes=["ObjectSize"],
        SSECustomerAlgorithm="AES256", SSECustomerKey=base64.b64encode(key).decode(),
        SSECustomerKeyMD5=base64.b64encode(hashlib.md5(key).digest()).decode())
    assert r["ObjectSize"] == 6


def test_no_read_permission(other_s3: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    with pytest.raises(ClientError) as e:
        other_s3.get_object_attributes(Bucket=bucket, Key="o", ObjectAttributes=["ETag"])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (403, 404)
