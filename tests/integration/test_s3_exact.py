"""Exact S3 behaviours of multipart uploads, checksums, copy ranges, listings and ListBuckets,
against a real server: empty parts, Complete retried, several uploads on one key, a PUT
during an upload, checksum types (COMPOSITE / FULL_OBJECT), BadDigest on every checksum
path, InvalidRange, encoding-type=url, empty continuation tokens, ListBuckets pages."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from awscrt import checksums as crt
from botocore.config import Config
from botocore.exceptions import ClientError
from s3helpers import RawClient, find_all, find_text, unsigned_trailer_body

from pygarage.testing.node import GarageNode

MIB = 1024 * 1024
PART = 5 * MIB


def _err(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def _b64(n: int, size: int) -> str:
    return base64.b64encode(n.to_bytes(size, "big")).decode()


def checksum(algo: str, data: bytes) -> str:
    if algo == "CRC32":
        return _b64(zlib.crc32(data), 4)
    if algo == "CRC32C":
        return _b64(crt.crc32c(data), 4)
    if algo == "CRC64NVME":
        return _b64(crt.crc64nvme(data), 8)
    return base64.b64encode(hashlib.new(algo.lower(), data).digest()).decode()


def _complete(s3: Any, bucket: str, key: str, uid: str, parts: list[dict[str, Any]],
              **kw: Any) -> Any:
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                        MultipartUpload={"Parts": parts}, **kw)


def _upload(s3: Any, bucket: str, key: str, data: bytes) -> tuple[str, str]:
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1,
                          Body=data)["ETag"]
    return uid, etag


# ---------------------------------------------------------------- empty parts

def test_empty_part_makes_an_empty_object(s3: Any, bucket: str) -> None:
    uid, etag = _upload(s3, bucket, "empty", b"")
    assert etag == f'"{hashlib.md5(b"").hexdigest()}"'
    parts = s3.list_parts(Bucket=bucket, Key="empty", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 0)]
    done = _complete(s3, bucket, "empty", uid, [{"PartNumber": 1, "ETag": etag}])
    want = hashlib.md5(hashlib.md5(b"").digest()).hexdigest() + "-1"
    assert done["ETag"] == f'"{want}"'
    head = s3.head_object(Bucket=bucket, Key="empty")
    assert head["ContentLength"] == 0 and head["ETag"] == f'"{want}"'
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""
    assert s3.get_object(Bucket=bucket, Key="empty", PartNumber=1)["ContentLength"] == 0


def test_empty_last_part_after_a_full_one(s3: Any, bucket: str) -> None:
    data = os.urandom(PART)
    uid, e1 = _upload(s3, bucket, "tail", data)
    e2 = s3.upload_part(Bucket=bucket, Key="tail", UploadId=uid, PartNumber=2,
                        Body=b"")["ETag"]
    _complete(s3, bucket, "tail", uid, [{"PartNumber": 1, "ETag": e1},
                                        {"PartNumber": 2, "ETag": e2}])
    assert s3.get_object(Bucket=bucket, Key="tail")["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key="tail", PartNumber=2)["ContentLength"] == 0


def test_empty_part_that_is_not_the_last_is_too_small(s3: Any, bucket: str) -> None:
    uid, e1 = _upload(s3, bucket, "small", b"")
    e2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=uid, PartNumber=2,
                        Body=b"x")["ETag"]
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "small", uid, [{"PartNumber": 1, "ETag": e1},
                                             {"PartNumber": 2, "ETag": e2}])
    assert _err(ei) == (400, "EntityTooSmall")


# ---------------------------------------------------------------- Complete retried, races

def test_complete_sent_again_answers_the_same(s3: Any, bucket: str) -> None:
    uid, etag = _upload(s3, bucket, "retry", b"first upload")
    parts = [{"PartNumber": 1, "ETag": etag}]
    first = _complete(s3, bucket, "retry", uid, parts)
    again = _complete(s3, bucket, "retry", uid, parts)
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert again["ETag"] == first["ETag"]
    # Even once a later write replaced the object, the retry still succeeds.
    s3.put_object(Bucket=bucket, Key="retry", Body=b"newer")
    assert _complete(s3, bucket, "retry", uid, parts)["ETag"] == first["ETag"]
    assert s3.get_object(Bucket=bucket, Key="retry")["Body"].read() == b"newer"
    # An aborted upload is not a completed one.
    uid2, etag2 = _upload(s3, bucket, "retry", b"aborted")
    s3.abort_multipart_upload(Bucket=bucket, Key="retry", UploadId=uid2)
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "retry", uid2, [{"PartNumber": 1, "ETag": etag2}])
    assert _err(ei) == (404, "NoSuchUpload")
    # The completed upload id is not valid on another key.
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "other", uid, parts)
    assert _err(ei) == (404, "NoSuchUpload")


@pytest.mark.parametrize("order", ["created", "reversed"])
def test_uploads_on_one_key_each_complete_last_wins(s3: Any, bucket: str,
                                                    order: str) -> None:
    ups = [(*_upload(s3, bucket, "k", f"upload {i}".encode()), i) for i in range(3)]
    if order == "reversed":
        ups.reverse()
    for uid, etag, i in ups:
        _complete(s3, bucket, "k", uid, [{"PartNumber": 1, "ETag": etag}])
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == f"upload {i}".encode()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_put_does_not_destroy_an_upload_in_progress(s3: Any, bucket: str) -> None:
    uid, e1 = _upload(s3, bucket, "k", b"part one ")
    s3.put_object(Bucket=bucket, Key="k", Body=b"plain put")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"plain put"
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in listed] == [uid]
    data = os.urandom(PART)
    e1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1,
                        Body=data)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=2,
                        Body=b"part two")["ETag"]
    # A delete of the key does not destroy it either.
    s3.delete_object(Bucket=bucket, Key="k")
    _complete(s3, bucket, "k", uid, [{"PartNumber": 1, "ETag": e1},
                                     {"PartNumber": 2, "ETag": e2}])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data + b"part two"
    # The plain PUT's object is gone now, its space with it; listing shows one object.
    objs = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in objs] == [("k", PART + 8)]


# ---------------------------------------------------------------- checksums

def test_checksum_mismatch_is_bad_digest_on_put_and_part(s3: Any, raw: RawClient,
                                                         bucket: str) -> None:
    wrong = checksum("CRC32", b"something else")
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="p", Body=b"data", ChecksumCRC32=wrong)
    assert _err(ei) == (400, "BadDigest")
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="p", Body=b"data",
                      ChecksumSHA256=checksum("SHA256", b"other"))
    assert _err(ei) == (400, "BadDigest")
    r = raw.request("PUT", f"/{bucket}/p", body=b"data",
                    headers={"Content-MD5": base64.b64encode(
                        hashlib.md5(b"other").digest()).decode()})
    assert (r.status, r.code) == (400, "BadDigest")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="p")["UploadId"]
    with pytest.raises(ClientError) as ei:
        s3.upload_part(Bucket=bucket, Key="p", UploadId=uid, PartNumber=1, Body=b"data",
                       ChecksumCRC32C=checksum("CRC32C", b"other"))
    assert _err(ei) == (400, "BadDigest")
    r = raw.request("PUT", f"/{bucket}/p", f"partNumber=1&uploadId={uid}", body=b"data",
                    headers={"Content-MD5": base64.b64encode(
                        hashlib.md5(b"other").digest()).decode()})
    assert (r.status, r.code) == (400, "BadDigest")
    # A trailer checksum on a part, over several blocks.
    data = os.urandom(MIB + 5000)
    body = unsigned_trailer_body(data, 65536, {"x-amz-checksum-crc32": wrong})
    sha = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    r = raw.request("PUT", f"/{bucket}/p", f"partNumber=1&uploadId={uid}", body=body,
                    payload_hash=sha,
                    headers={"Content-Encoding": "aws-chunked",
                             "x-amz-decoded-content-length": str(len(data)),
                             "x-amz-trailer": "x-amz-checksum-crc32",
                             "Content-Length": str(len(body))})
    assert (r.status, r.code) == (400, "BadDigest")
    assert s3.list_parts(Bucket=bucket, Key="p", UploadId=uid).get("Parts", []) == []


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_composite_checksum_multipart(s3: Any, bucket: str, algo: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="c", ChecksumAlgorithm=algo)
    assert up["ChecksumAlgorithm"] == algo
    assert up["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "COMPOSITE"
    uid = up["UploadId"]
    datas = [os.urandom(PART), os.urandom(1000)]
    parts = []
    for n, d in enumerate(datas, start=1):
        r = s3.upload_part(Bucket=bucket, Key="c", UploadId=uid, PartNumber=n, Body=d,
                           ChecksumAlgorithm=algo)
        assert r[f"Checksum{algo}"] == checksum(algo, d)
        parts.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{algo}": checksum(algo, d)})
    listed = s3.list_parts(Bucket=bucket, Key="c", UploadId=uid)
    assert listed["ChecksumAlgorithm"] == algo and listed["ChecksumType"] == "COMPOSITE"
    assert [p[f"Checksum{algo}"] for p in listed["Parts"]] == [checksum(algo, d)
                                                               for d in datas]
    # A part checksum in the Complete list that is not the uploaded one: InvalidPart.
    bad = [dict(parts[0], **{f"Checksum{algo}": checksum(algo, b"x")}), parts[1]]
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "c", uid, bad)
    assert _err(ei) == (400, "InvalidPart")
    raw_sums = b"".join(base64.b64decode(checksum(algo, d)) for d in datas)
    want = f"{checksum(algo, raw_sums)}-2"
    done = _complete(s3, bucket, "c", uid, parts)
    assert done[f"Checksum{algo}"] == want and done["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head[f"Checksum{algo}"] == want and head["ChecksumType"] == "COMPOSITE"
    got = s3.get_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(datas)
    assert got["ChecksumType"] == "COMPOSITE"


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_checksum_multipart(s3: Any, bucket: str, algo: str) -> None:
    kw = {} if algo == "CRC64NVME" else {"ChecksumType": "FULL_OBJECT"}  # its default
    up = s3.create_multipart_upload(Bucket=bucket, Key="f", ChecksumAlgorithm=algo, **kw)
    assert up["ChecksumAlgorithm"] == algo
    assert up["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "FULL_OBJECT"
    uid = up["UploadId"]
    datas = [os.urandom(PART), os.urandom(PART + 17), os.urandom(3)]
    parts = []
    for n, d in enumerate(datas, start=1):
        r = s3.upload_part(Bucket=bucket, Key="f", UploadId=uid, PartNumber=n, Body=d,
                           ChecksumAlgorithm=algo)
        parts.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{algo}": r[f"Checksum{algo}"]})
    assert s3.list_parts(Bucket=bucket, Key="f", UploadId=uid)["ChecksumType"] == "FULL_OBJECT"
    whole = b"".join(datas)
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "f", uid, parts, **{f"Checksum{algo}": checksum(algo, b"no")})
    assert _err(ei) == (400, "BadDigest")
    done = _complete(s3, bucket, "f", uid, parts, **{f"Checksum{algo}": checksum(algo, whole)},
                     ChecksumType="FULL_OBJECT", MpuObjectSize=len(whole))
    assert done[f"Checksum{algo}"] == checksum(algo, whole)
    assert done["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="f", ChecksumMode="ENABLED")
    assert head[f"Checksum{algo}"] == checksum(algo, whole)
    assert head["ChecksumType"] == "FULL_OBJECT"
    # botocore validates a full-object checksum against the body it reads.
    got = s3.get_object(Bucket=bucket, Key="f", ChecksumMode="ENABLED")
    assert got["Body"].read() == whole


def test_checksum_type_combinations(s3: Any, bucket: str) -> None:
    for algo, ctype in [("SHA256", "FULL_OBJECT"), ("SHA1", "FULL_OBJECT"),
                        ("CRC64NVME", "COMPOSITE")]:
        with pytest.raises(ClientError) as ei:
            s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm=algo,
                                       ChecksumType=ctype)
        assert _err(ei) == (400, "InvalidRequest")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm="CRC32")[
        "UploadId"]
    # A part checksummed with another algorithm than the upload's.
    with pytest.raises(ClientError) as ei:
        s3.upload_part(Bucket=bucket, Key="x", UploadId=uid, PartNumber=1, Body=b"d",
                       ChecksumAlgorithm="SHA256")
    assert _err(ei) == (400, "InvalidRequest")
    # A part sent without any checksum gets the upload's, computed by the server.
    r = s3.upload_part(Bucket=bucket, Key="x", UploadId=uid, PartNumber=1, Body=b"d",
                       ChecksumAlgorithm="CRC32")
    assert r["ChecksumCRC32"] == checksum("CRC32", b"d")
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "x", uid, [{"PartNumber": 1, "ETag": r["ETag"]}],
                  MpuObjectSize=2)
    assert _err(ei) == (400, "InvalidRequest")


def test_upload_file_with_sdk_defaults(node: GarageNode, creds: tuple[str, str],
                                       bucket: str, tmp_path: Any) -> None:
    """s3transfer's own multipart upload (CRC32 by default since 2025) and a checked GET."""
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{node.s3_port}",
                      aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                      region_name="garage",
                      config=Config(s3={"addressing_style": "path"}))
    src = tmp_path / "big"
    data = os.urandom(3 * 8 * MIB + 100)
    src.write_bytes(data)
    s3.upload_file(str(src), bucket, "big")
    head = s3.head_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data) and head["ChecksumCRC32"].endswith("-4")
    dst = tmp_path / "back"
    s3.download_file(bucket, "big", str(dst))
    assert dst.read_bytes() == data


# ---------------------------------------------------------------- UploadPartCopy ranges

def test_upload_part_copy_ranges(s3: Any, raw: RawClient, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"12345")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    for rng in ["bytes=0-21", "bytes=5-5", "bytes=3-1"]:
        with pytest.raises(ClientError) as ei:
            s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                                CopySource=f"{bucket}/src", CopySourceRange=rng)
        assert _err(ei) == (416, "InvalidRange"), rng
    for rng in ["0-2", "bytes=0", "bytes=hello-world", "bytes=0-bar", "bytes=hello-",
                "bytes=0-2,3-5", "bytes=-2", "bytes=1-", "bytes=\u0661-2"]:
        r = raw.request("PUT", f"/{bucket}/dst", f"partNumber=1&uploadId={uid}",
                        headers={"x-amz-copy-source": f"/{bucket}/src",
                                 "x-amz-copy-source-range": rng})
        assert (r.status, r.code) == (400, "InvalidArgument"), rng
    ok = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                             CopySource=f"{bucket}/src", CopySourceRange="bytes=1-4")
    _complete(s3, bucket, "dst", uid, [{"PartNumber": 1,
                                        "ETag": ok["CopyPartResult"]["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"2345"


# ---------------------------------------------------------------- listings

UGLY = ["a b/c d", "a+b/x", "p%25/q%", "é/ü ñ", "ctl/\x01\x1f\x7f", "tab\t/x", "plain",
        "a b/zz+", "lt</gt>&amp;"]


def test_list_v2_url_encoding_round_trips(s3: Any, raw: RawClient, bucket: str) -> None:
    for k in UGLY:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    # botocore asks for encoding-type=url and decodes what AWS encodes.
    got = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in got["Contents"]] == sorted(UGLY, key=lambda k: k.encode())
    for prefix in ["a b/", "a+b/", "p%25/", "é/", "ctl/\x01"]:
        got = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/",
                                 StartAfter=prefix + "\x00")
        assert got["Prefix"] == prefix and got["Delimiter"] == "/"
        assert got["StartAfter"] == prefix + "\x00"
        assert [o["Key"] for o in got.get("Contents", [])] == \
            [k for k in sorted(UGLY, key=lambda k: k.encode()) if k.startswith(prefix)]
    got = s3.list_objects_v2(Bucket=bucket, Delimiter=" ")
    assert [p["Prefix"] for p in got["CommonPrefixes"]] == ["a ", "é/ü "]
    assert got["Delimiter"] == " "
    # Pagination with ugly keys, one key per page.
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                          PaginationConfig={"PageSize": 1})
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == \
        sorted(UGLY, key=lambda k: k.encode())
    # Raw: exactly the AWS elements are encoded; the continuation token is not.
    q = (f"list-type=2&encoding-type=url&max-keys=1&prefix={quote('a b/', safe='')}"
         f"&delimiter={quote('/', safe='')}&start-after={quote('a b/', safe='')}")
    r = raw.request("GET", f"/{bucket}", q)
    assert r.status == 200, r.body
    x = r.xml()
    assert find_text(x, "Prefix") == "a%20b/" and find_text(x, "StartAfter") == "a%20b/"
    assert find_text(x, "Delimiter") == "/" and find_text(x, "EncodingType") == "url"
    assert find_text(x, "Key") == "a%20b/c%20d"
    token = find_text(x, "NextContinuationToken")
    assert token is not None
    r2 = raw.request("GET", f"/{bucket}", q.replace("start-after=a%2520b%2F", "") +
                     f"&continuation-token={quote(token, safe='')}")
    assert find_text(r2.xml(), "ContinuationToken") == token
    assert find_text(r2.xml(), "Key") == "a%20b/zz%2B"
    v1 = raw.request("GET", f"/{bucket}", "encoding-type=url&marker=a%20b%2Fc%20d&max-keys=1"
                     "&prefix=a%20b%2F").xml()
    assert find_text(v1, "Marker") == "a%20b/c%20d" and find_text(v1, "Prefix") == "a%20b/"
    assert find_text(v1, "NextMarker") is None  # only with a delimiter
    v1d = raw.request("GET", f"/{bucket}", "encoding-type=url&delimiter=%2F&max-keys=1"
                      "&prefix=a%20b%2F").xml()
    assert find_text(v1d, "NextMarker") == "a%20b/c%20d"
    assert [find_text(c, "Prefix") for c in find_all(
        raw.request("GET", f"/{bucket}", "list-type=2&encoding-type=url&delimiter=%2F").xml(),
        "CommonPrefixes")] == ["a%20b/", "a%2Bb/", "ctl/", "lt%3C/", "p%2525/", "tab%09/",
                               "%C3%A9/"]


def test_list_v2_empty_continuation_token_means_none(s3: Any, raw: RawClient,
                                                     bucket: str) -> None:
    for k in ["a", "b", "c"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    r = raw.request("GET", f"/{bucket}", "list-type=2&continuation-token=&max-keys=2")
    assert r.status == 200, r.body
    assert [find_text(c, "Key") for c in find_all(r.xml(), "Contents")] == ["a", "b"]
    assert find_text(r.xml(), "ContinuationToken") is None
    r = raw.request("GET", f"/{bucket}", "list-type=2&continuation-token=&start-after=a")
    assert [find_text(c, "Key") for c in find_all(r.xml(), "Contents")] == ["b", "c"]
    r = raw.request("GET", f"/{bucket}", "list-type=2&continuation-token=%21%21")
    assert (r.status, r.code) == (400, "InvalidArgument")


def test_list_buckets_pages(node: GarageNode) -> None:
    creds = node.create_key("lb-pages")
    names = [f"lbp-{c}-{i}" for c in "ab" for i in range(3)]
    for n in names:
        node.create_bucket(n, creds[0])
    client = node.s3(*creds)
    full = client.list_buckets()["Buckets"]
    assert [b["Name"] for b in full] == sorted(names)
    assert {b["BucketRegion"] for b in full} == {"garage"}
    page = client.list_buckets(MaxBuckets=2)
    assert [b["Name"] for b in page["Buckets"]] == sorted(names)[:2]
    assert page["ContinuationToken"]
    rest = client.list_buckets(MaxBuckets=10, ContinuationToken=page["ContinuationToken"])
    assert [b["Name"] for b in rest["Buckets"]] == sorted(names)[2:]
    assert "ContinuationToken" not in rest
    pref = client.list_buckets(Prefix="lbp-b", MaxBuckets=2)
    assert [b["Name"] for b in pref["Buckets"]] == ["lbp-b-0", "lbp-b-1"]
    assert pref["Prefix"] == "lbp-b"
    pages = client.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 1})
    assert [b["Name"] for p in pages for b in p["Buckets"]] == sorted(names)
    assert [b["Name"] for b in client.list_buckets(BucketRegion="garage")["Buckets"]] == \
        sorted(names)
    assert client.list_buckets(BucketRegion="elsewhere")["Buckets"] == []
    raw = RawClient(node, creds)
    for q in ["max-buckets=0", "max-buckets=10001", "max-buckets=x", "max-buckets=%C2%B2",
              "continuation-token=%21"]:
        r = raw.request("GET", "/", q)
        assert (r.status, r.code) == (400, "InvalidArgument"), q
