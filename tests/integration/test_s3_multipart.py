"""Multipart uploads: skipped and re-sent part numbers, renumbering, the multipart ETag,
part size and order rules, UploadPartCopy with ranges, Abort, ListMultipartUploads,
ListParts (with checksums)."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient

MIB = 1024 * 1024
PART = 5 * MIB


def _err(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def mp_etag(parts: list[bytes]) -> str:
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"'


def _upload(s3: Any, bucket: str, key: str, uid: str, n: int, data: bytes, **kw: Any) -> str:
    return str(s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data,
                              **kw)["ETag"])


def _complete(s3: Any, bucket: str, key: str, uid: str, parts: list[tuple[int, str]]) -> Any:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})


def test_skip_resend_renumber(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="video/x-test",
                                    Metadata={"origin": "multipart"})
    uid = up["UploadId"]
    assert len(uid) >= 32
    p3_old, p2, p3_new, p6 = (os.urandom(PART), os.urandom(PART), os.urandom(PART),
                              os.urandom(1234))
    e3_old = _upload(s3, bucket, "mp", uid, 3, p3_old)
    e2 = _upload(s3, bucket, "mp", uid, 2, p2)
    e3 = _upload(s3, bucket, "mp", uid, 3, p3_new)
    e6 = _upload(s3, bucket, "mp", uid, 6, p6)
    assert e3_old == f'"{hashlib.md5(p3_old).hexdigest()}"'
    assert e3 == f'"{hashlib.md5(p3_new).hexdigest()}"'
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == \
        [(2, e2, PART), (3, e3, PART), (6, e6, 1234)]
    # The old part 3 is gone: completing with its ETag fails.
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "mp", uid, [(2, e2), (3, e3_old), (6, e6)])
    assert _err(ei) == (400, "InvalidPart")
    r = _complete(s3, bucket, "mp", uid, [(2, e2), (3, e3), (6, e6)])
    assert r["ETag"] == mp_etag([p2, p3_new, p6])
    assert r["Key"] == "mp" and r["Bucket"] == bucket
    whole = p2 + p3_new + p6
    got = s3.get_object(Bucket=bucket, Key="mp")
    body = got["Body"].read()
    assert len(body) == len(whole)
    assert body == whole
    assert got["ETag"] == r["ETag"]
    assert got["ContentType"] == "video/x-test"
    assert got["Metadata"] == {"origin": "multipart"}
    # Parts are renumbered 1..N.
    for n, data in ((1, p2), (2, p3_new), (3, p6)):
        part = s3.get_object(Bucket=bucket, Key="mp", PartNumber=n)
        assert part["PartsCount"] == 3
        assert part["ContentLength"] == len(data)
        assert part["Body"].read() == data, n
        assert s3.head_object(Bucket=bucket, Key="mp", PartNumber=n)["ContentLength"] == \
            len(data)
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=4)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 416)
    # Ranges across part boundaries.
    rng = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={PART - 10}-{PART + 9}")
    assert rng["Body"].read() == whole[PART - 10:PART + 10]
    rng = s3.get_object(Bucket=bucket, Key="mp", Range="bytes=-1300")
    assert rng["Body"].read() == whole[-1300:]
    # The upload is finished: no longer listed, no more parts accepted.
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert uid not in [u["UploadId"] for u in uploads]
    with pytest.raises(ClientError) as ei:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert _err(ei) == (404, "NoSuchUpload")


def test_entity_too_small(s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    e1 = _upload(s3, bucket, "small", uid, 1, b"a" * 100)
    e2 = _upload(s3, bucket, "small", uid, 2, b"b" * 100)
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "small", uid, [(1, e1), (2, e2)])
    assert _err(ei) == (400, "EntityTooSmall")
    # A single small part is fine: it is the last one.
    r = _complete(s3, bucket, "small", uid, [(2, e2)])
    assert r["ETag"] == mp_etag([b"b" * 100])
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"b" * 100


def test_invalid_part_order_and_part(s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="order")["UploadId"]
    e1 = _upload(s3, bucket, "order", uid, 1, os.urandom(PART))
    e2 = _upload(s3, bucket, "order", uid, 2, b"tail")
    for parts in ([(2, e2), (1, e1)], [(1, e1), (1, e1)]):
        with pytest.raises(ClientError) as ei:
            _complete(s3, bucket, "order", uid, parts)
        assert _err(ei) == (400, "InvalidPartOrder"), parts
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "order", uid, [(1, e1), (2, '"0123456789abcdef0123456789abcdef"')])
    assert _err(ei) == (400, "InvalidPart")
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "order", uid, [(1, e1), (5, e2)])
    assert _err(ei) == (400, "InvalidPart")
    # Nothing was created by the failures; the upload still completes.
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="order")
    _complete(s3, bucket, "order", uid, [(1, e1), (2, e2)])
    assert s3.head_object(Bucket=bucket, Key="order")["ContentLength"] == PART + 4


def test_abort(s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="ab")["UploadId"]
    e1 = _upload(s3, bucket, "ab", uid, 1, b"x" * 1000)
    r = s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=uid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.list_parts(Bucket=bucket, Key="ab", UploadId=uid)
    assert _err(ei) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as ei:
        _upload(s3, bucket, "ab", uid, 2, b"y")
    assert _err(ei) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "ab", uid, [(1, e1)])
    assert _err(ei) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as ei:
        s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=uid)
    assert _err(ei) == (404, "NoSuchUpload")
    assert uid not in [u["UploadId"] for u in
                       s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="ab")


def test_unknown_upload_ids(s3: Any, bucket: str) -> None:
    for uid in ("0" * 64, "not-an-id", "ab"):
        with pytest.raises(ClientError) as ei:
            s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
        assert _err(ei) == (404, "NoSuchUpload")
        with pytest.raises(ClientError) as ei:
            _upload(s3, bucket, "k", uid, 1, b"x")
        assert _err(ei) == (404, "NoSuchUpload")
    # An upload id used with another key does not exist there.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="real")["UploadId"]
    with pytest.raises(ClientError) as ei:
        s3.list_parts(Bucket=bucket, Key="other", UploadId=uid)
    assert _err(ei) == (404, "NoSuchUpload")


def test_list_multipart_uploads(s3: Any, bucket: str) -> None:
    ids = {}
    for key in ("u/a", "u/b", "u/b", "v/c", "w"):
        ids.setdefault(key, []).append(
            s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
    r = s3.list_multipart_uploads(Bucket=bucket)
    got = [(u["Key"], u["UploadId"]) for u in r["Uploads"]]
    assert sorted(got) == sorted((k, i) for k, v in ids.items() for i in v)
    assert [k for k, _ in got] == sorted(k for k, _ in got)
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix="u/")
    assert sorted(u["UploadId"] for u in r["Uploads"]) == sorted(ids["u/a"] + ids["u/b"])
    r = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["u/", "v/"]
    assert [u["Key"] for u in r["Uploads"]] == ["w"]
    # Paging one by one visits every upload exactly once.
    seen = []
    kw: dict[str, str] = {}
    while True:
        r = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=1, **kw)
        seen += [u["UploadId"] for u in r.get("Uploads", [])]
        if not r["IsTruncated"]:
            break
        kw = {"KeyMarker": r["NextKeyMarker"], "UploadIdMarker": r["NextUploadIdMarker"]}
    assert sorted(seen) == sorted(i for v in ids.values() for i in v)
    s3.abort_multipart_upload(Bucket=bucket, Key="w", UploadId=ids["w"][0])
    r = s3.list_multipart_uploads(Bucket=bucket)
    assert "w" not in [u["Key"] for u in r["Uploads"]]


def test_list_parts_paging(s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="lp")["UploadId"]
    etags = {n: _upload(s3, bucket, "lp", uid, n, f"part {n}".encode()) for n in range(1, 8)}
    seen = []
    marker = 0
    while True:
        r = s3.list_parts(Bucket=bucket, Key="lp", UploadId=uid, MaxParts=3,
                          PartNumberMarker=marker)
        seen += [(p["PartNumber"], p["ETag"]) for p in r["Parts"]]
        if not r["IsTruncated"]:
            break
        marker = r["NextPartNumberMarker"]
    assert seen == sorted(etags.items())


def test_part_number_limits_and_empty_part(raw: RawClient, s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="lim")["UploadId"]
    for n in ("0", "10001", "-1", "abc"):
        r = raw.request("PUT", f"/{bucket}/lim", f"partNumber={n}&uploadId={uid}", body=b"x")
        assert r.status == 400, (n, r.body)
    # An empty part is accepted, as AWS does (test_s3_exact.py completes one).
    r = raw.request("PUT", f"/{bucket}/lim", f"partNumber=1&uploadId={uid}", body=b"")
    assert r.status == 200
    r = raw.request("PUT", f"/{bucket}/lim", f"partNumber=10000&uploadId={uid}", body=b"x")
    assert r.status == 200


def test_complete_with_empty_or_bad_list(raw: RawClient, s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="cl")["UploadId"]
    e1 = _upload(s3, bucket, "cl", uid, 1, b"data")
    for body in (b"<CompleteMultipartUpload></CompleteMultipartUpload>",
                 b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
                 b"</CompleteMultipartUpload>",
                 b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag>"
                 b"</Part></CompleteMultipartUpload>",
                 b"<CompleteMultipartUpload><Part>", b"garbage", b""):
        r = raw.request("POST", f"/{bucket}/cl", f"uploadId={uid}", body=body)
        assert r.status == 400, (body, r.body)
        if body:
            assert r.code in ("MalformedXML", "InvalidPart", "EntityTooSmall", "InvalidRequest")
    good = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag>"
            f"</Part></CompleteMultipartUpload>").encode()
    r = raw.request("POST", f"/{bucket}/cl", f"uploadId={uid}", body=good)
    assert r.status == 200, r.body
    assert s3.get_object(Bucket=bucket, Key="cl")["Body"].read() == b"data"


def test_upload_part_copy(s3: Any, bucket: str) -> None:
    src = os.urandom(PART + MIB + 77)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    s3.put_object(Bucket=bucket, Key="small-src", Body=b"0123456789")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="pc")["UploadId"]
    r1 = s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes=100-{100 + PART - 1}")
    r2 = s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes={PART}-{PART + MIB + 76}")
    r3 = s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=uid, PartNumber=3,
                             CopySource={"Bucket": bucket, "Key": "small-src"},
                             CopySourceRange="bytes=2-5")
    r4 = s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=uid, PartNumber=4,
                             CopySource={"Bucket": bucket, "Key": "small-src"})
    pieces = [src[100:100 + PART], src[PART:], b"2345", b"0123456789"]
    etags = [r["CopyPartResult"]["ETag"] for r in (r1, r2, r3, r4)]
    assert etags == [f'"{hashlib.md5(p).hexdigest()}"' for p in pieces]
    with pytest.raises(ClientError) as ei:
        _complete(s3, bucket, "pc", uid, list(enumerate(etags, start=1)))
    assert _err(ei) == (400, "EntityTooSmall")  # part 2 is only 1 MiB
    r = _complete(s3, bucket, "pc", uid, [(1, etags[0]), (3, etags[2])])
    assert r["ETag"] == mp_etag([pieces[0], pieces[2]])
    assert s3.get_object(Bucket=bucket, Key="pc")["Body"].read() == pieces[0] + pieces[2]


def test_upload_part_copy_bad_range(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="s", Body=b"0123456789")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="bad")["UploadId"]
    for rng in ("bytes=5-100", "bytes=20-30", "bytes=abc", "bytes=-3"):
        with pytest.raises(ClientError) as ei:
            s3.upload_part_copy(Bucket=bucket, Key="bad", UploadId=uid, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "s"},
                                CopySourceRange=rng)
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 416), rng


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_list_parts_with_checksums(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="ck", ChecksumAlgorithm="CRC32")
    uid = up["UploadId"]
    assert up.get("ChecksumAlgorithm") == "CRC32"
    parts = [os.urandom(PART), os.urandom(1000)]
    results = [s3.upload_part(Bucket=bucket, Key="ck", UploadId=uid, PartNumber=i + 1, Body=p,
                              ChecksumAlgorithm="CRC32") for i, p in enumerate(parts)]
    assert [r["ChecksumCRC32"] for r in results] == [_crc32(p) for p in parts]
    lp = s3.list_parts(Bucket=bucket, Key="ck", UploadId=uid)
    assert lp.get("ChecksumAlgorithm") == "CRC32"
    assert [p["ChecksumCRC32"] for p in lp["Parts"]] == [_crc32(p) for p in parts]
    # A wrong part checksum at Complete is refused.
    with pytest.raises(ClientError) as ei:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="ck", UploadId=uid,
            MultipartUpload={"Parts": [
                {"PartNumber": 1, "ETag": results[0]["ETag"], "ChecksumCRC32": "AAAAAA=="},
                {"PartNumber": 2, "ETag": results[1]["ETag"],
                 "ChecksumCRC32": results[1]["ChecksumCRC32"]}]})
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="ck", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": r["ETag"],
                                    "ChecksumCRC32": r["ChecksumCRC32"]}
                                   for i, r in enumerate(results)]})
    raw_crcs = b"".join(base64.b64decode(r["ChecksumCRC32"]) for r in results)
    composite = f"{_crc32(raw_crcs)}-2"
    assert done["ChecksumCRC32"] == composite
    head = s3.head_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite
    assert s3.get_object(Bucket=bucket, Key="ck")["Body"].read() == b"".join(parts)


def test_wrong_part_checksum_refused(raw: RawClient, s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="wp", ChecksumAlgorithm="CRC32")[
        "UploadId"]
    r = raw.request("PUT", f"/{bucket}/wp", f"partNumber=1&uploadId={uid}", body=b"abc",
                    headers={"x-amz-checksum-crc32": _crc32(b"abd")})
    assert (r.status, r.code) == (400, "BadDigest"), r.body
    lp = s3.list_parts(Bucket=bucket, Key="wp", UploadId=uid)
    assert not lp.get("Parts")


def test_multipart_overwrites_and_is_overwritten(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ow", Body=b"before")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="ow")["UploadId"]
    e1 = _upload(s3, bucket, "ow", uid, 1, b"during")
    # Still the old object while the upload runs.
    assert s3.get_object(Bucket=bucket, Key="ow")["Body"].read() == b"before"
    _complete(s3, bucket, "ow", uid, [(1, e1)])
    assert s3.get_object(Bucket=bucket, Key="ow")["Body"].read() == b"during"
    s3.put_object(Bucket=bucket, Key="ow", Body=b"after")
    assert s3.get_object(Bucket=bucket, Key="ow")["Body"].read() == b"after"
