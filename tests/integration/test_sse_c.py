"""SSE-C against a real server: objects encrypted at rest with the client's key, the key
required again to read, copy or add parts, AWS's errors for missing, wrong or bad keys."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient

from pygarage.testing.node import GarageNode

KEY = os.urandom(32)
OTHER = os.urandom(32)


def sse(key: bytes = KEY) -> dict[str, Any]:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def copy_sse(key: bytes = KEY) -> dict[str, Any]:
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}


def raw_headers(key: bytes, prefix: str = "") -> dict[str, str]:
    p = f"x-amz-{prefix}server-side-encryption-customer-"
    return {p + "algorithm": "AES256", p + "key": base64.b64encode(key).decode(),
            p + "key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def err(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def data_files(node: GarageNode) -> list[Path]:
    return [p for p in (node.root / "data").rglob("*") if p.is_file()]


@pytest.mark.parametrize("size", [0, 10, 5000, 3 * 1024 * 1024 + 17])
def test_round_trip_and_headers(s3: Any, bucket: str, size: int) -> None:
    body = os.urandom(size)
    put = s3.put_object(Bucket=bucket, Key="o", Body=body, **sse())
    md5 = base64.b64encode(hashlib.md5(KEY).digest()).decode()
    assert put["SSECustomerAlgorithm"] == "AES256" and put["SSECustomerKeyMD5"] == md5
    # As on AWS, the ETag is not the MD5 of the data.
    assert put["ETag"].strip('"') != hashlib.md5(body).hexdigest()
    got = s3.get_object(Bucket=bucket, Key="o", **sse())
    assert got["Body"].read() == body
    assert got["SSECustomerAlgorithm"] == "AES256" and got["SSECustomerKeyMD5"] == md5
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key="o", **sse())
    assert head["ContentLength"] == size and head["SSECustomerKeyMD5"] == md5
    assert "x-pygarage-sse-c" not in head["ResponseMetadata"]["HTTPHeaders"]


def test_missing_wrong_or_needless_key(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="enc", Body=b"secret data" * 1000, **sse())
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plain data")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="enc")
    assert err(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="enc", **sse(OTHER))
    assert err(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="enc", **sse(OTHER))
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="enc")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="plain", **sse())
    assert err(e) == (400, "InvalidRequest")
    # Ranged GET without the key neither.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="enc", Range="bytes=0-3")
    assert err(e) == (400, "InvalidRequest")


def test_bad_key_headers(raw: RawClient, bucket: str) -> None:
    good = raw_headers(KEY)
    cases: list[tuple[dict[str, str], int, str]] = [
        ({**good, "x-amz-server-side-encryption-customer-key-MD5":
          base64.b64encode(hashlib.md5(OTHER).digest()).decode()}, 400, "InvalidArgument"),
        ({**good, "x-amz-server-side-encryption-customer-key":
          base64.b64encode(b"short").decode(),
          "x-amz-server-side-encryption-customer-key-MD5":
          base64.b64encode(hashlib.md5(b"short").digest()).decode()}, 400, "InvalidArgument"),
        ({**good, "x-amz-server-side-encryption-customer-key": "!!not base64!!"}, 400,
         "InvalidArgument"),
        ({**good, "x-amz-server-side-encryption-customer-algorithm": "AES128"}, 400,
         "InvalidEncryptionAlgorithmError"),
        ({k: v for k, v in good.items() if not k.endswith("MD5")}, 400, "InvalidArgument"),
        ({k: v for k, v in good.items() if not k.endswith("algorithm")}, 400,
         "InvalidArgument"),
        ({k: v for k, v in good.items() if not k.endswith("-key")}, 400, "InvalidArgument"),
    ]
    for headers, status, code in cases:
        r = raw.request("PUT", f"/{bucket}/bad", body=b"data", headers=headers)
        assert (r.status, r.code) == (status, code), headers
    r = raw.request("GET", f"/{bucket}/bad")
    assert r.status == 404


def test_encrypted_at_rest_and_not_deduplicated(node: GarageNode, s3: Any,
                                                bucket: str) -> None:
    marker = b"PLAINTEXT-MARKER-" * 8192  # compressible, easy to find on disk
    before = set(data_files(node))
    s3.put_object(Bucket=bucket, Key="a", Body=marker, **sse())
    s3.put_object(Bucket=bucket, Key="b", Body=marker, **sse())
    new = set(data_files(node)) - before
    assert len(new) == 2  # same plaintext and key, still two distinct blocks
    for p in new:
        raw_block = p.read_bytes()
        assert b"PLAINTEXT-MARKER" not in raw_block
        assert len(raw_block) >= len(marker)  # stored uncompressed: no size leak via zstd
    assert s3.get_object(Bucket=bucket, Key="b", **sse())["Body"].read() == marker


def test_ranged_reads(s3: Any, bucket: str) -> None:
    # block_size is 1 MiB in tests: ranges inside, across and at the end of blocks.
    body = os.urandom(3 * 1024 * 1024 + 100)
    s3.put_object(Bucket=bucket, Key="r", Body=body, **sse())
    for a, b in [(0, 0), (5, 99), (1024 * 1024 - 3, 1024 * 1024 + 5),
                 (2 * 1024 * 1024, 3 * 1024 * 1024 + 99), (len(body) - 1, len(body) - 1)]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={a}-{b}", **sse())
        assert got["Body"].read() == body[a:b + 1], (a, b)
        assert got["ContentRange"] == f"bytes {a}-{b}/{len(body)}"
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=-10", **sse())
    assert got["Body"].read() == body[-10:]


def test_multipart(s3: Any, bucket: str) -> None:
    part1, part2 = os.urandom(5 * 1024 * 1024), os.urandom(1234567)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse())
    assert up["SSECustomerAlgorithm"] == "AES256"
    uid = up["UploadId"]
    # Each part needs the key again, the same one.
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=part1)
    assert err(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=part1,
                       **sse(OTHER))
    assert err(e)[0] == 400
    p1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=part1,
                        **sse())
    assert p1["SSECustomerKeyMD5"]
    assert p1["ETag"].strip('"') != hashlib.md5(part1).hexdigest()
    p2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=part2,
                        **sse())
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]},
                                   {"PartNumber": 2, "ETag": p2["ETag"]}]})
    body = part1 + part2
    assert s3.get_object(Bucket=bucket, Key="mp", **sse())["Body"].read() == body
    rng = s3.get_object(Bucket=bucket, Key="mp", Range="bytes=5242000-5243000", **sse())
    assert rng["Body"].read() == body[5242000:5243001]
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2, **sse())
    assert got["Body"].read() == part2
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="mp")
    assert err(e) == (400, "InvalidRequest")


def test_plain_upload_refuses_part_keys(s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="p")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="p", UploadId=uid, PartNumber=1, Body=b"x",
                       **sse())
    assert err(e) == (400, "InvalidRequest")


def test_copy(s3: Any, bucket: str) -> None:
    body = os.urandom(2 * 1024 * 1024 + 5)
    s3.put_object(Bucket=bucket, Key="src", Body=body, **sse())
    src = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="d0", CopySource=src)
    assert err(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="d0", CopySource=src, **copy_sse(OTHER))
    assert err(e) == (403, "AccessDenied")
    # Encrypted -> plain, encrypted -> other key, plain -> encrypted, key rotation in place.
    s3.copy_object(Bucket=bucket, Key="d1", CopySource=src, **copy_sse())
    assert s3.get_object(Bucket=bucket, Key="d1")["Body"].read() == body
    r = s3.copy_object(Bucket=bucket, Key="d2", CopySource=src, **copy_sse(), **sse(OTHER))
    assert r["SSECustomerAlgorithm"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="d2", **sse(OTHER))["Body"].read() == body
    s3.copy_object(Bucket=bucket, Key="d3", CopySource={"Bucket": bucket, "Key": "d1"},
                   **sse())
    assert s3.get_object(Bucket=bucket, Key="d3", **sse())["Body"].read() == body
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="d3")
    s3.copy_object(Bucket=bucket, Key="src", CopySource=src, **copy_sse(), **sse(OTHER))
    assert s3.get_object(Bucket=bucket, Key="src", **sse(OTHER))["Body"].read() == body


def test_upload_part_copy_from_encrypted_source(s3: Any, bucket: str) -> None:
    body = os.urandom(6 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="src", Body=body, **sse(OTHER))
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst", **sse())["UploadId"]
    src = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource=src, **sse())
    assert err(e) == (400, "InvalidRequest")
    p1 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                             CopySource=src, CopySourceRange="bytes=0-5242879",
                             **copy_sse(OTHER), **sse())
    p2 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2,
                             CopySource=src, CopySourceRange=f"bytes=5242880-{len(body) - 1}",
                             **copy_sse(OTHER), **sse())
    s3.complete_multipart_upload(
        Bucket=bucket, Key="dst", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                                   {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="dst", **sse())["Body"].read() == body


def test_key_never_logged(node: GarageNode, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 5000, **sse())
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="k", **sse(OTHER))
    log = Path(node.log_path).read_text(errors="replace")
    for k in (KEY, OTHER):
        assert base64.b64encode(k).decode() not in log
