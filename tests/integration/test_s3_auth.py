"""SigV4 against the real server: header auth, presigned URLs, every payload mode
(signed hex, UNSIGNED-PAYLOAD, signed aws-chunked, unsigned aws-chunked with trailer),
flexible checksums, Content-MD5, wrong region, clock skew."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import urllib.error
import urllib.request
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from awscrt import checksums as crt
from s3helpers import (
    RawClient,
    object_exists,
    signed_chunked_body,
    signed_chunked_length,
    signed_trailer_length,
    unsigned_trailer_body,
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def expected_checksum(algo: str, data: bytes) -> str:
    if algo == "CRC32":
        return _b64(zlib.crc32(data).to_bytes(4, "big"))
    if algo == "CRC32C":
        return _b64(crt.crc32c(data).to_bytes(4, "big"))
    if algo == "CRC64NVME":
        return _b64(crt.crc64nvme(data).to_bytes(8, "big"))
    if algo == "SHA1":
        return _b64(hashlib.sha1(data).digest())
    return _b64(hashlib.sha256(data).digest())


# ---------------------------------------------------------------- header auth

def test_header_auth_signed_payload(raw: RawClient, s3: Any, bucket: str) -> None:
    body = b"signed body"
    r = raw.request("PUT", f"/{bucket}/hdr", body=body)
    assert r.status == 200, r.body
    assert r.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    r = raw.request("GET", f"/{bucket}/hdr")
    assert (r.status, r.body) == (200, body)


def test_bad_signature_is_403(raw: RawClient, bucket: str) -> None:
    h = raw.sign("GET", f"/{bucket}").headers
    h["Authorization"] = h["Authorization"][:-4] + "0000"
    r = raw.send("GET", f"/{bucket}", h)
    assert r.status == 403
    assert r.code == "SignatureDoesNotMatch"


def test_unknown_access_key_is_403(raw: RawClient, bucket: str) -> None:
    r = raw.request("GET", f"/{bucket}", creds=("GK" + "0" * 24, "x" * 64))
    assert r.status == 403
    assert r.code in ("InvalidAccessKeyId", "AccessDenied")


def test_no_auth_is_403(raw: RawClient, bucket: str) -> None:
    for method, path in (("GET", "/"), ("GET", f"/{bucket}"), ("GET", f"/{bucket}/k"),
                         ("PUT", f"/{bucket}/k")):
        r = raw.request(method, path, sign=False, body=b"x" if method == "PUT" else b"")
        assert r.status == 403, (method, path, r.body)
        assert r.code == "AccessDenied"


def test_unsigned_payload(raw: RawClient, s3: Any, bucket: str) -> None:
    body = os.urandom(10_000)
    r = raw.request("PUT", f"/{bucket}/unsigned", body=body, payload_hash="UNSIGNED-PAYLOAD")
    assert r.status == 200, r.body
    assert s3.get_object(Bucket=bucket, Key="unsigned")["Body"].read() == body


@pytest.mark.parametrize("size", [100, 200_000])
def test_signed_sha256_mismatch(raw: RawClient, s3: Any, bucket: str, size: int) -> None:
    body = os.urandom(size)
    wrong = hashlib.sha256(body + b"!").hexdigest()
    r = raw.request("PUT", f"/{bucket}/mismatch", body=body, payload_hash=wrong)
    assert r.status == 400, r.body
    assert r.code == "XAmzContentSHA256Mismatch"
    assert not object_exists(s3, bucket, "mismatch")


# ---------------------------------------------------------------- presigned URLs

def test_presigned_get_and_put(s3: Any, bucket: str) -> None:
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre"},
                                    ExpiresIn=300)
    req = urllib.request.Request(url, data=b"via presigned put", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"},
                                    ExpiresIn=300)
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == b"via presigned put"


def test_presigned_tampered_is_403(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a"},
                                    ExpiresIn=300)
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(url.replace(f"/{bucket}/a?", f"/{bucket}/b?"), timeout=10)
    assert ei.value.code == 403
    assert b"SignatureDoesNotMatch" in ei.value.read()


def test_presigned_expiry(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="soon-gone", Body=b"x")
    url = s3.generate_presigned_url("get_object",
                                    Params={"Bucket": bucket, "Key": "soon-gone"},
                                    ExpiresIn=1)
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(url, timeout=10)
    assert ei.value.code == 403
    body = ei.value.read()
    assert b"<Code>AccessDenied</Code>" in body


# ---------------------------------------------------------------- aws-chunked

def _streaming_headers(data_len: int, wire_len: int, sha: str,
                       extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(data_len),
            "Content-Length": str(wire_len), **(extra or {})}


@pytest.mark.parametrize("size", [0, 1000, 300_000])
def test_streaming_signed_payload(raw: RawClient, s3: Any, bucket: str, size: int) -> None:
    data = os.urandom(size)
    chunk = 64 * 1024
    sha = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    headers = _streaming_headers(size, signed_chunked_length(size, chunk), sha)
    s = raw.sign("PUT", f"/{bucket}/streamed", headers=headers, payload_hash=sha)
    r = raw.send("PUT", f"/{bucket}/streamed", s.headers, signed_chunked_body(s, data, chunk))
    assert r.status == 200, r.body
    assert r.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="streamed")
    assert got["Body"].read() == data
    # aws-chunked is a transfer detail: it must not become the object's Content-Encoding.
    assert "ContentEncoding" not in got or "aws-chunked" not in got["ContentEncoding"]


@pytest.mark.parametrize("forge", [0, 2, 4])
def test_streaming_forged_chunk_signature(raw: RawClient, s3: Any, bucket: str,
                                          forge: int) -> None:
    size, chunk = 4 * 64 * 1024 + 5, 64 * 1024  # chunks 0..4, then the final empty one (5)
    data = os.urandom(size)
    sha = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    headers = _streaming_headers(size, signed_chunked_length(size, chunk), sha)
    s = raw.sign("PUT", f"/{bucket}/forged", headers=headers, payload_hash=sha)
    r = raw.send("PUT", f"/{bucket}/forged", s.headers,
                 signed_chunked_body(s, data, chunk, forge=forge))
    assert r.status == 403, r.body
    assert r.code == "SignatureDoesNotMatch"
    assert not object_exists(s3, bucket, "forged")
    assert "forged" not in [o["Key"] for o in
                            s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_streaming_forged_final_chunk(raw: RawClient, s3: Any, bucket: str) -> None:
    data = os.urandom(1000)
    sha = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    headers = _streaming_headers(1000, signed_chunked_length(1000, 4096), sha)
    s = raw.sign("PUT", f"/{bucket}/forged-end", headers=headers, payload_hash=sha)
    r = raw.send("PUT", f"/{bucket}/forged-end", s.headers,
                 signed_chunked_body(s, data, 4096, forge=1))
    assert r.status == 403, r.body
    assert r.code == "SignatureDoesNotMatch"
    assert not object_exists(s3, bucket, "forged-end")


@pytest.mark.parametrize("case", ["ok", "forged-trailer-signature", "wrong-crc"])
def test_streaming_signed_payload_trailer(raw: RawClient, s3: Any, bucket: str,
                                          case: str) -> None:
    data = os.urandom(150_000)
    crc = expected_checksum("CRC32C", data if case != "wrong-crc" else data + b"!")
    trailers = {"x-amz-checksum-crc32c": crc}
    sha = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    chunk = 64 * 1024
    headers = _streaming_headers(len(data), signed_trailer_length(len(data), chunk, trailers),
                                 sha, {"x-amz-trailer": "x-amz-checksum-crc32c"})
    s = raw.sign("PUT", f"/{bucket}/st", headers=headers, payload_hash=sha)
    body = signed_chunked_body(s, data, chunk, trailers=trailers,
                               forge_trailer=case == "forged-trailer-signature")
    r = raw.send("PUT", f"/{bucket}/st", s.headers, body)
    if case == "ok":
        assert r.status == 200, r.body
        got = s3.get_object(Bucket=bucket, Key="st", ChecksumMode="ENABLED")
        assert got["Body"].read() == data
        assert got["ChecksumCRC32C"] == crc
    else:
        assert (r.status, r.code) == ({"forged-trailer-signature": 403,
                                       "wrong-crc": 400}[case],
                                      {"forged-trailer-signature": "SignatureDoesNotMatch",
                                       "wrong-crc": "BadDigest"}[case]), r.body
        assert not object_exists(s3, bucket, "st")


@pytest.mark.parametrize("size", [10, 200_000])
def test_streaming_unsigned_trailer_crc32(raw: RawClient, s3: Any, bucket: str,
                                          size: int) -> None:
    data = os.urandom(size)
    crc = expected_checksum("CRC32", data)
    body = unsigned_trailer_body(data, 8192, {"x-amz-checksum-crc32": crc})
    sha = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = _streaming_headers(size, len(body), sha,
                                 {"x-amz-trailer": "x-amz-checksum-crc32"})
    r = raw.request("PUT", f"/{bucket}/trailer", headers=headers, body=body, payload_hash=sha)
    assert r.status == 200, r.body
    assert r.headers.get("x-amz-checksum-crc32") == crc
    got = s3.get_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got["ChecksumCRC32"] == crc


def test_streaming_unsigned_trailer_wrong_crc(raw: RawClient, s3: Any, bucket: str) -> None:
    data = os.urandom(5000)
    body = unsigned_trailer_body(data, 8192, {"x-amz-checksum-crc32": "AAAAAA=="})
    sha = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = _streaming_headers(5000, len(body), sha,
                                 {"x-amz-trailer": "x-amz-checksum-crc32"})
    r = raw.request("PUT", f"/{bucket}/badtrailer", headers=headers, body=body,
                    payload_hash=sha)
    assert r.status == 400, r.body
    assert r.code == "BadDigest"
    assert not object_exists(s3, bucket, "badtrailer")


def test_streaming_unsigned_trailer_missing(raw: RawClient, s3: Any, bucket: str) -> None:
    data = b"no trailer here"
    body = unsigned_trailer_body(data, 8192, {})
    sha = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = _streaming_headers(len(data), len(body), sha,
                                 {"x-amz-trailer": "x-amz-checksum-crc32"})
    r = raw.request("PUT", f"/{bucket}/notrailer", headers=headers, body=body,
                    payload_hash=sha)
    assert r.status == 400, r.body
    assert not object_exists(s3, bucket, "notrailer")


def test_streaming_truncated_body(raw: RawClient, s3: Any, bucket: str) -> None:
    data = os.urandom(3000)
    sha = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    full_len = signed_chunked_length(3000, 1024)
    cut = full_len - 120  # the final zero-length chunk never arrives
    headers = _streaming_headers(3000, cut, sha)
    s = raw.sign("PUT", f"/{bucket}/cut", headers=headers, payload_hash=sha)
    body = signed_chunked_body(s, data, 1024)[:cut]
    r = raw.send("PUT", f"/{bucket}/cut", s.headers, body)
    assert r.status == 400, r.body
    assert not object_exists(s3, bucket, "cut")


# ---------------------------------------------------------------- checksums

ALGOS = ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("size", [11, 100_000])
def test_checksum_algorithms(s3: Any, bucket: str, algo: str, size: int) -> None:
    data = os.urandom(size)
    want = expected_checksum(algo, data)
    r = s3.put_object(Bucket=bucket, Key="ck", Body=data, ChecksumAlgorithm=algo)
    assert r[f"Checksum{algo}"] == want
    got = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got[f"Checksum{algo}"] == want
    head = s3.head_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert head[f"Checksum{algo}"] == want
    # Without ChecksumMode the checksum is not returned.
    plain = s3.head_object(Bucket=bucket, Key="ck")
    assert f"Checksum{algo}" not in plain


@pytest.mark.parametrize("size", [11, 100_000])
def test_wrong_checksum_header_is_bad_digest(raw: RawClient, s3: Any, bucket: str,
                                             size: int) -> None:
    data = os.urandom(size)
    wrong = expected_checksum("CRC32", data + b"x")
    r = raw.request("PUT", f"/{bucket}/badck", body=data,
                    headers={"x-amz-checksum-crc32": wrong})
    assert r.status == 400, r.body
    assert r.code == "BadDigest"
    assert not object_exists(s3, bucket, "badck")
    right = expected_checksum("CRC32", data)
    r = raw.request("PUT", f"/{bucket}/badck", body=data,
                    headers={"x-amz-checksum-crc32": right})
    assert r.status == 200, r.body


def test_content_md5(raw: RawClient, s3: Any, bucket: str) -> None:
    data = b"content md5 body"
    good = _b64(hashlib.md5(data).digest())
    r = raw.request("PUT", f"/{bucket}/md5", body=data, headers={"Content-MD5": good})
    assert r.status == 200, r.body
    bad = _b64(hashlib.md5(data + b"x").digest())
    r = raw.request("PUT", f"/{bucket}/md5-bad", body=data, headers={"Content-MD5": bad})
    assert (r.status, r.code) == (400, "BadDigest"), r.body
    assert not object_exists(s3, bucket, "md5-bad")
    for malformed in ("not base64!", _b64(b"short"), ""):
        r = raw.request("PUT", f"/{bucket}/md5-bad", body=data,
                        headers={"Content-MD5": malformed})
        assert (r.status, r.code) == (400, "InvalidDigest"), (malformed, r.body)
    assert not object_exists(s3, bucket, "md5-bad")
    # boto3 computes it itself for some calls; a big body with a wrong MD5 is refused too.
    big = os.urandom(300_000)
    r = raw.request("PUT", f"/{bucket}/md5-big", body=big, headers={"Content-MD5": bad})
    assert (r.status, r.code) == (400, "BadDigest")
    assert not object_exists(s3, bucket, "md5-big")


# ---------------------------------------------------------------- region and clock

def test_wrong_region(raw: RawClient, bucket: str) -> None:
    # (us-east-1 is accepted as well as s3_region unless strict_region: see
    # test_hardening_input.py.)
    r = raw.request("GET", f"/{bucket}", region="eu-central-1")
    assert r.status == 400
    assert r.code == "AuthorizationHeaderMalformed"
    assert "garage" in (r.text("Message") or "")
    assert r.text("Region") == "garage"
    assert b"<Region>garage</Region>" in r.body


def test_wrong_region_boto3_redirects(node: Any, creds: tuple[str, str], bucket: str) -> None:
    """boto3 reads the region from the 400 (x-amz-bucket-region) and retries there."""
    import boto3
    from botocore.config import Config
    client = boto3.client("s3", endpoint_url=node.endpoint, region_name="eu-west-7",
                          aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                          config=Config(s3={"addressing_style": "path"},
                                        retries={"max_attempts": 1}))
    client.put_object(Bucket=bucket, Key="redirected", Body=b"r")
    r = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in r["Contents"]] == ["redirected"]


@pytest.mark.parametrize("shift", [timedelta(minutes=-20), timedelta(minutes=20),
                                   timedelta(hours=-30)])
def test_clock_skew(raw: RawClient, bucket: str, shift: timedelta) -> None:
    r = raw.request("GET", f"/{bucket}", when=datetime.now(UTC) + shift)
    assert r.status == 403, r.body
    assert r.code == "RequestTimeTooSkewed"


def test_small_clock_skew_accepted(raw: RawClient, bucket: str) -> None:
    for shift in (timedelta(minutes=-10), timedelta(minutes=10)):
        r = raw.request("GET", f"/{bucket}", when=datetime.now(UTC) + shift)
        assert r.status == 200, r.body
