"""Object endpoints: PutObject, GetObject (Range, partNumber, conditionals, response-*
overrides), HeadObject, DeleteObject(s), CopyObject, stored headers, ETag, key rules."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient, find_all, find_text

from pygarage.testing.node import GarageNode

BIG = 2 * 1024 * 1024 + 12345  # three 1 MiB blocks, the last one partial


def _err(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def _status(e: pytest.ExceptionInfo[ClientError]) -> int:
    return int(e.value.response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.fixture(scope="module")
def big_body() -> bytes:
    return os.urandom(BIG)


# ---------------------------------------------------------------- put / get / head

@pytest.mark.parametrize("size", [0, 1, 3071, 3072, 1024 * 1024, BIG])
def test_put_get_sizes_and_etag(s3: Any, bucket: str, size: int) -> None:
    body = os.urandom(size)
    r = s3.put_object(Bucket=bucket, Key="obj", Body=body)
    assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert "VersionId" in r
    got = s3.get_object(Bucket=bucket, Key="obj")
    assert got["Body"].read() == body
    assert got["ContentLength"] == size
    assert got["ETag"] == r["ETag"]
    assert got["AcceptRanges"] == "bytes"
    head = s3.head_object(Bucket=bucket, Key="obj")
    assert head["ContentLength"] == size
    assert head["ETag"] == r["ETag"]


def test_overwrite(s3: Any, bucket: str, big_body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=big_body)
    s3.put_object(Bucket=bucket, Key="o", Body=b"small now")
    assert s3.get_object(Bucket=bucket, Key="o")["Body"].read() == b"small now"
    s3.put_object(Bucket=bucket, Key="o", Body=big_body)
    assert s3.get_object(Bucket=bucket, Key="o")["Body"].read() == big_body


def test_get_missing(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="nope")
    assert _err(ei) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as ei:
        s3.head_object(Bucket=bucket, Key="nope")
    assert _status(ei) == 404


def test_stored_headers_and_metadata(s3: Any, bucket: str) -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    s3.put_object(Bucket=bucket, Key="meta", Body=b"x", ContentType="text/plain; charset=utf-8",
                  ContentEncoding="gzip", ContentDisposition='attachment; filename="f.txt"',
                  ContentLanguage="fr-CA", CacheControl="max-age=60", Expires=expires,
                  Metadata={"color": "blue", "Mixed-Case": "Value With Spaces", "n": "1"})
    for r in (s3.head_object(Bucket=bucket, Key="meta"),
              s3.get_object(Bucket=bucket, Key="meta")):
        assert r["ContentType"] == "text/plain; charset=utf-8"
        assert r["ContentEncoding"] == "gzip"
        assert r["ContentDisposition"] == 'attachment; filename="f.txt"'
        assert r["ContentLanguage"] == "fr-CA"
        assert r["CacheControl"] == "max-age=60"
        assert r["Expires"] == expires
        assert r["Metadata"] == {"color": "blue", "mixed-case": "Value With Spaces", "n": "1"}


def test_default_content_type(s3: Any, bucket: str, raw: RawClient) -> None:
    r = raw.request("PUT", f"/{bucket}/noct", body=b"x")
    assert r.status == 200
    ct = s3.head_object(Bucket=bucket, Key="noct")["ContentType"]
    assert ct in ("binary/octet-stream", "application/octet-stream")


def test_utf8_metadata(s3: Any, bucket: str, raw: RawClient) -> None:
    r = raw.request("PUT", f"/{bucket}/utf8meta", body=b"x",
                    headers={"x-amz-meta-name": "caf\u00e9"})
    assert r.status == 200, r.body
    r = raw.request("HEAD", f"/{bucket}/utf8meta")
    assert r.headers["x-amz-meta-name"].encode("latin-1").decode() == "caf\u00e9"


def test_response_overrides(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ov", Body=b"x", ContentType="text/plain")
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    r = s3.get_object(Bucket=bucket, Key="ov", ResponseContentType="application/json",
                      ResponseContentDisposition="inline", ResponseContentEncoding="identity",
                      ResponseContentLanguage="de", ResponseCacheControl="no-cache",
                      ResponseExpires=when)
    assert r["ContentType"] == "application/json"
    assert r["ContentDisposition"] == "inline"
    assert r["ContentEncoding"] == "identity"
    assert r["ContentLanguage"] == "de"
    assert r["CacheControl"] == "no-cache"
    assert r["Expires"] == when
    assert r["Body"].read() == b"x"
    # Stored headers are untouched.
    assert s3.head_object(Bucket=bucket, Key="ov")["ContentType"] == "text/plain"


# ---------------------------------------------------------------- ranges

@pytest.mark.parametrize("where", ["inline", "blocks"])
def test_ranges(s3: Any, bucket: str, big_body: bytes, where: str) -> None:
    body = b"0123456789abcdefghijklmnopqrstuvwxyz" if where == "inline" else big_body
    n = len(body)
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    cases = {"bytes=0-9": (0, 10), "bytes=-10": (n - 10, n), "bytes=5-": (5, n),
             f"bytes=3-{n + 100}": (3, n), f"bytes=-{n + 5}": (0, n), "bytes=7-7": (7, 8)}
    if where == "blocks":
        mib = 1024 * 1024
        cases[f"bytes={mib - 3}-{mib + 2}"] = (mib - 3, mib + 3)  # across a block boundary
        cases[f"bytes={mib - 1}-{2 * mib + 5}"] = (mib - 1, 2 * mib + 6)  # spans a block
    for rng, (a, b) in cases.items():
        r = s3.get_object(Bucket=bucket, Key="r", Range=rng)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206, rng
        assert r["Body"].read() == body[a:b], rng
        assert r["ContentRange"] == f"bytes {a}-{b - 1}/{n}", rng
        assert r["ContentLength"] == b - a
        h = s3.head_object(Bucket=bucket, Key="r", Range=rng)
        assert h["ContentLength"] == b - a
    for rng in (f"bytes={n}-", "bytes=999999999-", f"bytes={n}-{n + 10}", "bytes=-0"):
        with pytest.raises(ClientError) as ei:
            s3.get_object(Bucket=bucket, Key="r", Range=rng)
        assert _err(ei) == (416, "InvalidRange"), rng
        assert ei.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == \
            f"bytes */{n}"


def test_absurd_ranges(raw: RawClient, s3: Any, bucket: str) -> None:
    body = b"absurd range body"
    s3.put_object(Bucket=bucket, Key="ab", Body=body)
    for rng in ("bytes=" + "9" * 5000 + "-", "bytes=-" + "9" * 5000, "bytes=5-2",
                "bytes=a-b", "items=0-5", "bytes=0-1,3-4", "bytes=--5", "bytes=-", "",
                "bytes=0-" + "9" * 100):
        r = raw.request("GET", f"/{bucket}/ab", headers={"Range": rng})
        assert r.status in (200, 206, 416), (rng, r.status, r.body[:300])
        if r.status == 200:
            assert r.body == body
        if r.status == 416:
            assert r.code == "InvalidRange"


def test_part_number_simple_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="p", Body=b"whole object")
    r = s3.get_object(Bucket=bucket, Key="p", PartNumber=1)
    assert r["Body"].read() == b"whole object"
    assert r["ResponseMetadata"]["HTTPStatusCode"] in (200, 206)
    assert r.get("PartsCount", 1) == 1
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="p", PartNumber=2)
    assert _status(ei) in (400, 416)
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="p", PartNumber=1, Range="bytes=0-1")
    assert _status(ei) == 400


# ---------------------------------------------------------------- conditionals

def test_conditional_get(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")["ETag"]
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch="*")["Body"].read() == b"cond"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123"')
    assert _err(ei) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert _status(ei) == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"other"')["Body"].read() \
        == b"cond"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert _status(ei) == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() \
        == b"cond"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert _err(ei) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=future)["Body"].read() \
        == b"cond"
    # HEAD follows the same rules.
    with pytest.raises(ClientError) as ei:
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert _status(ei) == 304
    with pytest.raises(ClientError) as ei:
        s3.head_object(Bucket=bucket, Key="c", IfMatch='"nope"')
    assert _status(ei) == 412


def test_conditional_raw_304_has_no_body(raw: RawClient, s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c304", Body=b"x" * 5000)["ETag"]
    r = raw.request("GET", f"/{bucket}/c304", headers={"If-None-Match": etag})
    assert r.status == 304
    assert r.body == b""
    assert r.headers["etag"] == etag
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    r = raw.request("GET", f"/{bucket}/c304", headers={"If-Modified-Since": later})
    assert r.status == 304


# ---------------------------------------------------------------- delete

def test_delete_object(s3: Any, bucket: str, big_body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="d", Body=big_body)
    r = s3.delete_object(Bucket=bucket, Key="d")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="d")
    assert _status(ei) == 404
    r = s3.delete_object(Bucket=bucket, Key="d")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    r = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_objects(s3: Any, bucket: str) -> None:
    for k in ("a", "b", "c", "d"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"},
                                                            {"Key": "missing"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["a", "b", "missing"]
    assert not r.get("Errors")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert not r.get("Deleted")
    assert not r.get("Errors")
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == ["d"]


def test_delete_objects_raw_quiet(raw: RawClient, s3: Any, bucket: str) -> None:
    import base64
    s3.put_object(Bucket=bucket, Key="q1", Body=b"1")
    body = (b"<Delete><Quiet>true</Quiet><Object><Key>q1</Key></Object>"
            b"<Object><Key>q2</Key></Object></Delete>")
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = raw.request("POST", f"/{bucket}", "delete", body=body, headers={"Content-MD5": md5})
    assert r.status == 200, r.body
    assert not find_all(r.xml(), "Deleted")
    assert not find_all(r.xml(), "Error")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


# ---------------------------------------------------------------- copy

def test_copy_metadata_directive(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", ContentType="text/x-src",
                  Metadata={"a": "1"}, CacheControl="no-store")
    r = s3.copy_object(Bucket=bucket, Key="dst-copy", CopySource={"Bucket": bucket,
                                                                   "Key": "src"},
                       Metadata={"ignored": "yes"})
    src_etag = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    assert r["CopyObjectResult"]["ETag"] == src_etag
    h = s3.head_object(Bucket=bucket, Key="dst-copy")
    assert h["ContentType"] == "text/x-src"
    assert h["Metadata"] == {"a": "1"}
    assert h["CacheControl"] == "no-store"
    assert s3.get_object(Bucket=bucket, Key="dst-copy")["Body"].read() == b"copy me"

    s3.copy_object(Bucket=bucket, Key="dst-replace",
                   CopySource={"Bucket": bucket, "Key": "src"}, MetadataDirective="REPLACE",
                   ContentType="text/x-new", Metadata={"b": "2"})
    h = s3.head_object(Bucket=bucket, Key="dst-replace")
    assert h["ContentType"] == "text/x-new"
    assert h["Metadata"] == {"b": "2"}
    assert "CacheControl" not in h
    assert s3.get_object(Bucket=bucket, Key="dst-replace")["Body"].read() == b"copy me"


def test_copy_big_then_delete_source(s3: Any, bucket: str, big_body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="bigsrc", Body=big_body)
    s3.copy_object(Bucket=bucket, Key="bigdst", CopySource=f"{bucket}/bigsrc")
    s3.delete_object(Bucket=bucket, Key="bigsrc")
    got = s3.get_object(Bucket=bucket, Key="bigdst")["Body"].read()
    assert hashlib.md5(got).digest() == hashlib.md5(big_body).digest()


def test_copy_across_buckets(s3: Any, node: GarageNode, creds: tuple[str, str],
                             bucket: str) -> None:
    import secrets
    other = "b-" + secrets.token_hex(6)
    node.create_bucket(other, creds[0])
    s3.put_object(Bucket=other, Key="k é", Body=b"from elsewhere")
    s3.copy_object(Bucket=bucket, Key="k2", CopySource={"Bucket": other, "Key": "k é"})
    assert s3.get_object(Bucket=bucket, Key="k2")["Body"].read() == b"from elsewhere"


def test_copy_preconditions(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="pc", Body=b"pc")["ETag"]
    src = {"Bucket": bucket, "Key": "pc"}
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="pc2", CopySource=src, CopySourceIfMatch='"bad"')
    assert _err(ei) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="pc2", CopySource=src, CopySourceIfNoneMatch=etag)
    assert _status(ei) == 412
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="pc2", CopySource=src,
                       CopySourceIfUnmodifiedSince=datetime.now(UTC) - timedelta(days=1))
    assert _status(ei) == 412
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="pc2", CopySource=src,
                       CopySourceIfModifiedSince=datetime.now(UTC) + timedelta(days=1))
    assert _status(ei) == 412
    with pytest.raises(ClientError) as ei:
        s3.head_object(Bucket=bucket, Key="pc2")
    assert _status(ei) == 404
    s3.copy_object(Bucket=bucket, Key="pc2", CopySource=src, CopySourceIfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="pc2")["Body"].read() == b"pc"


def test_copy_onto_itself(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="self", Body=b"me", Metadata={"v": "1"})
    src = {"Bucket": bucket, "Key": "self"}
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="self", CopySource=src)
    assert _err(ei) == (400, "InvalidRequest")
    s3.copy_object(Bucket=bucket, Key="self", CopySource=src, MetadataDirective="REPLACE",
                   Metadata={"v": "2"})
    h = s3.get_object(Bucket=bucket, Key="self")
    assert h["Metadata"] == {"v": "2"}
    assert h["Body"].read() == b"me"


def test_copy_missing_source(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "none"})
    assert _err(ei) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": "no-such-bucket-zz",
                                                           "Key": "none"})
    assert _err(ei) == (404, "NoSuchBucket")


def test_copy_source_without_permission(s3: Any, other_s3: Any, node: GarageNode,
                                        other_creds: tuple[str, str], bucket: str) -> None:
    import secrets
    s3.put_object(Bucket=bucket, Key="private", Body=b"p")
    theirs = "b-" + secrets.token_hex(6)
    node.create_bucket(theirs, other_creds[0])
    with pytest.raises(ClientError) as ei:
        other_s3.copy_object(Bucket=theirs, Key="stolen",
                             CopySource={"Bucket": bucket, "Key": "private"})
    assert _err(ei) == (403, "AccessDenied")


# ---------------------------------------------------------------- keys

def test_key_length_limit(s3: Any, bucket: str) -> None:
    k1024 = "k" * 1024
    s3.put_object(Bucket=bucket, Key=k1024, Body=b"long")
    assert s3.get_object(Bucket=bucket, Key=k1024)["Body"].read() == b"long"
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["Key"] == k1024
    multi = "\u00e9" * 512  # 1024 bytes of UTF-8
    s3.put_object(Bucket=bucket, Key=multi, Body=b"accents")
    assert s3.get_object(Bucket=bucket, Key=multi)["Body"].read() == b"accents"
    for too_long in ("k" * 1025, "\u00e9" * 512 + "x", "\u20ac" * 342):
        with pytest.raises(ClientError) as ei:
            s3.put_object(Bucket=bucket, Key=too_long, Body=b"x")
        assert _err(ei) == (400, "KeyTooLongError")
    with pytest.raises(ClientError) as ei:
        s3.create_multipart_upload(Bucket=bucket, Key="k" * 1025)
    assert _err(ei) == (400, "KeyTooLongError")
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="k" * 1025, CopySource=f"{bucket}/{k1024}")
    assert _err(ei) == (400, "KeyTooLongError")


WEIRD_KEYS = ["../../etc/passwd", "a//b", "\u00e9&+ \"/%", " leading space", "trailing space ",
              "./dot", "dir/../x", "/leading-slash", "semi;colon=eq?q#h", "tab\there",
              "emoji-\U0001f600", "back\\slash", "a/./b", ".", "..", "%2F", "+plus+",
              "new\nline", "\u4e2d\u6587/\u30ad\u30fc"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_weird_keys_are_just_keys(s3: Any, raw: RawClient, node: GarageNode,
                                  bucket: str) -> None:
    top = node.root.parent
    before = _tree(top)
    for i, key in enumerate(WEIRD_KEYS):
        body = f"body {i}".encode() * (1 if i % 2 else 2000)  # inline and block objects
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    listed = []
    token: dict[str, str] = {}
    while True:
        r = s3.list_objects_v2(Bucket=bucket, EncodingType="url", MaxKeys=5, **token)
        from urllib.parse import unquote
        listed += [unquote(o["Key"]) for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        token = {"ContinuationToken": r["NextContinuationToken"]}
    assert sorted(listed, key=lambda k: k.encode()) == \
        sorted(WEIRD_KEYS, key=lambda k: k.encode())
    # Nothing was written outside the node's own directories, and no path uses a key.
    after = _tree(top)
    new = after - before
    assert all(p.split("/", 1)[0] == node.root.name for p in new), new
    for p in after:
        parts = Path(p).parts
        assert "etc" not in parts and "passwd" not in parts, p
    for place in (top.parent, top, node.root, node.root / "data", node.root / "meta"):
        assert not (place / "etc").exists(), place
    # A raw request with a literal (unencoded) dot-dot path is a key too, not a traversal.
    r = raw.request("PUT", f"/{bucket}/x/../../../escape", body=b"raw dots")
    assert r.status == 200, r.body
    assert s3.get_object(Bucket=bucket, Key="x/../../../escape")["Body"].read() == b"raw dots"
    for key in WEIRD_KEYS:
        s3.delete_object(Bucket=bucket, Key=key)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == \
        ["x/../../../escape"]


def test_nul_in_key(raw: RawClient, s3: Any, bucket: str) -> None:
    r = raw.request("PUT", f"/{bucket}/nul%00key", body=b"x")
    assert r.status == 400, r.body
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    r = raw.request("GET", f"/{bucket}/nul%00key")
    assert r.status in (400, 404)


def test_invalid_utf8_key(raw: RawClient, s3: Any, bucket: str) -> None:
    r = raw.request("PUT", f"/{bucket}/bad%FFutf8", body=b"x")
    assert r.status == 400, r.body
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_percent_encoded_keys_raw(raw: RawClient, s3: Any, bucket: str) -> None:
    key = "sp ace+plus&amp=eq/\u00e9"
    r = raw.request("PUT", f"/{bucket}/" + quote(key, safe="/"), body=b"enc")
    assert r.status == 200, r.body
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"enc"
    # '+' in a path is a plus, never a space.
    r = raw.request("GET", f"/{bucket}/" + quote(key, safe="/+"))
    assert (r.status, r.body) == (200, b"enc")


def test_error_body_fields(raw: RawClient, bucket: str) -> None:
    r = raw.request("GET", f"/{bucket}/missing-key")
    assert r.status == 404
    assert r.headers["content-type"].startswith("application/xml")
    root = r.xml()
    assert root.tag == "Error"
    assert find_text(root, "Code") == "NoSuchKey"
    assert find_text(root, "Message")
    assert find_text(root, "Region") == "garage"
    assert find_text(root, "Resource") == f"/{bucket}/missing-key"
