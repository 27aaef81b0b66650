"""Hostile input on the wire, against real server processes: numbers that Python's
isdigit()/int() mishandle, forged chunks after the first block, huge signed chunks, non-UTF-8
and control characters in stored or echoed headers, aws-chunked in Content-Encoding, presigned
expiry, us-east-1 scoped signatures, many metadata headers, conditional writes."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from s3helpers import (
    RawClient,
    Resp,
    assert_log_clean,
    head_lines,
    object_exists,
    read_http_response,
    signed_chunked_body,
    signed_chunked_length,
)

from pygarage.testing.node import GarageNode

STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
# What isdigit()/int() mishandle, and what a query or header value may carry.
HOSTILE = ["\u00b2", "\u0666\u0660", "9" * 5000, "", "\r\n", "+1", "-1", " 1"]
HOSTILE_IDS = ["superscript2", "arabic-indic-60", "5000-digits", "empty", "crlf", "plus1",
               "minus1", "space1"]


def _q(value: str) -> str:
    return quote(value, safe="")


@pytest.fixture(scope="module")
def setup(node: GarageNode, creds: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """A bucket with an object 'obj' (2 parts) and a multipart upload in progress on 'mp'."""
    s3 = node.s3(*creds)
    name = "hi-" + secrets.token_hex(5)
    node.create_bucket(name, creds[0])
    uid = s3.create_multipart_upload(Bucket=name, Key="obj")["UploadId"]
    parts = [s3.upload_part(Bucket=name, Key="obj", UploadId=uid, PartNumber=n,
                            Body=b"x" * (5 * 1024 * 1024 if n == 1 else 10))["ETag"]
             for n in (1, 2)]
    s3.complete_multipart_upload(Bucket=name, Key="obj", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), parts, strict=True)]})
    uid = s3.create_multipart_upload(Bucket=name, Key="mp")["UploadId"]
    s3.upload_part(Bucket=name, Key="mp", UploadId=uid, PartNumber=1, Body=b"p")
    yield name, uid


# ------------------------------------------------------------------ 1. numbers on the wire

QUERY_FIELDS = [
    ("GET", "obj", "partNumber={v}"),
    ("HEAD", "obj", "partNumber={v}"),
    ("PUT", "mp", "partNumber={v}&uploadId={uid}"),
    ("GET", "mp", "uploadId={uid}&max-parts={v}"),
    ("GET", "mp", "uploadId={uid}&part-number-marker={v}"),
    ("GET", "", "max-keys={v}"),
    ("GET", "", "list-type=2&max-keys={v}"),
    ("GET", "", "versions&max-keys={v}"),
    ("GET", "", "uploads&max-uploads={v}"),
]


@pytest.mark.parametrize("value", HOSTILE, ids=HOSTILE_IDS)
@pytest.mark.parametrize(("method", "key", "query"), QUERY_FIELDS,
                         ids=[f"{m}-{q.split('=')[-2].split('&')[-1]}"
                              for m, _, q in QUERY_FIELDS])
def test_query_numbers_are_strict(raw: RawClient, setup: tuple[str, str], method: str,
                                  key: str, query: str, value: str) -> None:
    bucket, uid = setup
    path = f"/{bucket}/{key}" if key else f"/{bucket}"
    r = raw.request(method, path, query.format(v=_q(value), uid=uid),
                    body=b"data" if method == "PUT" else b"")
    assert r.status == 400, (r.status, r.body[:300])
    if method != "HEAD":
        assert r.code == "InvalidArgument", r.body


def test_query_numbers_still_work(raw: RawClient, setup: tuple[str, str]) -> None:
    bucket, uid = setup
    assert raw.request("GET", f"/{bucket}/obj", "partNumber=2").body == b"x" * 10
    assert raw.request("GET", f"/{bucket}", "list-type=2&max-keys=0010").status == 200
    r = raw.request("GET", f"/{bucket}/mp", f"uploadId={uid}&max-parts=1&part-number-marker=0")
    assert r.status == 200 and r.text("PartNumber") == "1"


def _presigned_url(raw: RawClient, path: str, expires: Any, region: str = "garage") -> str:
    req = AWSRequest(method="GET", url=f"http://{raw.host}{path}", headers={})
    S3SigV4QueryAuth(Credentials(*raw.creds), "s3", region, expires=expires).add_auth(req)
    return str(req.url)


def _get_url(raw: RawClient, url: str) -> Resp:
    target = url.split(raw.host, 1)[1]
    return raw.send("GET", target, {"Host": raw.host})


@pytest.mark.parametrize("value", HOSTILE, ids=HOSTILE_IDS)
def test_presigned_expires_is_strict(raw: RawClient, setup: tuple[str, str],
                                     value: str) -> None:
    # Properly signed, so only X-Amz-Expires is wrong ('٦٠' used to mean 60 seconds).
    r = _get_url(raw, _presigned_url(raw, f"/{setup[0]}/obj", value))
    assert (r.status, r.code) == (400, "AuthorizationQueryParametersError"), r.body[:300]


def test_presigned_expires_limits(raw: RawClient, setup: tuple[str, str]) -> None:
    path = f"/{setup[0]}/obj"
    r = _get_url(raw, _presigned_url(raw, path, 604801))
    assert (r.status, r.code) == (400, "AuthorizationQueryParametersError")
    assert r.text("Message") == ("X-Amz-Expires must be less than a week (in seconds) that is; "
                                 "604800")
    r = _get_url(raw, _presigned_url(raw, path, 0))
    assert (r.status, r.code, r.text("Message")) == (403, "AccessDenied", "Request has expired")
    assert _get_url(raw, _presigned_url(raw, path, 604800)).status == 200
    assert _get_url(raw, _presigned_url(raw, path, 60)).status == 200


def _streaming_put(raw: RawClient, path: str, data: bytes, chunk: int,
                   extra: dict[str, str] | None = None, forge: int | None = None,
                   cut: int = 0) -> Resp:
    headers = {"Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(len(data)),
               "Content-Length": str(signed_chunked_length(len(data), chunk) - cut),
               **(extra or {})}
    s = raw.sign("PUT", path, headers=headers, payload_hash=STREAMING)
    body = signed_chunked_body(s, data, chunk, forge=forge)
    return raw.send("PUT", path, s.headers, body[:len(body) - cut])


@pytest.mark.parametrize("value", [v for v in HOSTILE if v != "\r\n"],
                         ids=[i for i, v in zip(HOSTILE_IDS, HOSTILE, strict=True)
                              if v != "\r\n"])
def test_decoded_content_length_is_strict(raw: RawClient, setup: tuple[str, str],
                                          value: str) -> None:
    r = _streaming_put(raw, f"/{setup[0]}/dcl", b"abc", 1024,
                       {"x-amz-decoded-content-length": value})
    assert r.status == 400, (r.status, r.body[:300])
    # HTTP strips the blanks around a header value: " 1" arrives as "1", a wrong length.
    assert r.code == ("IncompleteBody" if value == " 1" else "InvalidArgument"), r.body


@pytest.mark.parametrize("value", ["\u00b2", "\u0666\u0660", "9" * 5000, "", "+1", "-1",
                                   "1\r2", "1 1"])
def test_content_length_is_strict(raw: RawClient, setup: tuple[str, str], value: str) -> None:
    with raw.raw_socket() as sock:
        head = head_lines("PUT", f"/{setup[0]}/cl", {"Host": raw.host}).replace(
            b"\r\n\r\n", b"\r\nContent-Length: " + value.encode() + b"\r\n\r\n")
        sock.sendall(head + b"abc")
        status, _, _ = read_http_response(sock)
    assert status == 400


@pytest.mark.parametrize("value", [v for v in HOSTILE if v != "\r\n"],
                         ids=[i for i, v in zip(HOSTILE_IDS, HOSTILE, strict=True)
                              if v != "\r\n"])
def test_range_numbers_never_fail(raw: RawClient, setup: tuple[str, str], value: str) -> None:
    for rng in (f"bytes={value}-5", f"bytes=0-{value}", f"bytes=-{value}"):
        r = raw.request("GET", f"/{setup[0]}/obj", headers={"Range": rng})
        # Malformed ranges are ignored (200, as S3 does); a huge end is clamped (206).
        assert r.status in (200, 206, 416), (rng[:40], r.status, r.body[:300])


@pytest.mark.parametrize("value", ["bytes=\u0660-\u0665", "bytes=\u00b2-5", "bytes=+0-5",
                                   "bytes=0-" + "9" * 5000, "bytes=0-"])
def test_copy_source_range_is_strict(raw: RawClient, setup: tuple[str, str],
                                     value: str) -> None:
    bucket, uid = setup
    r = raw.request("PUT", f"/{bucket}/mp", f"partNumber=2&uploadId={uid}",
                    headers={"x-amz-copy-source": f"/{bucket}/obj",
                             "x-amz-copy-source-range": value})
    assert (r.status, r.code) == (400, "InvalidArgument"), r.body[:300]


# ---------------------------------------------- 2. forged chunk after the first block

@pytest.fixture(scope="module")
def small_blocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarageNode]:
    n = GarageNode(tmp_path_factory.mktemp("small-blocks"), block_size="4KiB")
    n.start()
    yield n
    n.stop()


@pytest.mark.parametrize("forge", [1, 2, 4])
def test_forged_chunk_after_first_block_is_403(small_blocks: GarageNode, forge: int) -> None:
    creds = small_blocks.create_key("forge")
    name = "fb-" + secrets.token_hex(4)
    small_blocks.create_bucket(name, creds[0])
    raw, s3 = RawClient(small_blocks, creds), small_blocks.s3(*creds)
    data = os.urandom(4 * 64 * 1024 + 5)  # 64 KiB chunks, 4 KiB blocks
    r = _streaming_put(raw, f"/{name}/forged", data, 64 * 1024, forge=forge)
    assert (r.status, r.code) == (403, "SignatureDoesNotMatch"), r.body[:300]
    assert not object_exists(s3, name, "forged")
    r = _streaming_put(raw, f"/{name}/cut", data, 64 * 1024, cut=100)
    assert (r.status, r.code) == (400, "IncompleteBody"), r.body[:300]
    assert not object_exists(s3, name, "cut")
    r = _streaming_put(raw, f"/{name}/ok", data, 64 * 1024)
    assert r.status == 200, r.body
    assert s3.get_object(Bucket=name, Key="ok")["Body"].read() == data
    # UploadPart takes the same path: the forged part never shows up.
    uid = s3.create_multipart_upload(Bucket=name, Key="mpu")["UploadId"]
    r = _streaming_put(raw, f"/{name}/mpu?partNumber=1&uploadId={uid}", data, 64 * 1024,
                       forge=forge)
    assert (r.status, r.code) == (403, "SignatureDoesNotMatch"), r.body[:300]
    assert s3.list_parts(Bucket=name, Key="mpu", UploadId=uid).get("Parts", []) == []
    assert_log_clean(small_blocks, [creds[1]])


# ----------------------------------------------------- 3. memory with a huge signed chunk

def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_huge_signed_chunk_memory_is_bounded(private_node: GarageNode) -> None:
    private_node.start()
    creds = private_node.create_key("mem")
    private_node.create_bucket("mem", creds[0])
    raw = RawClient(private_node, creds)
    assert private_node.proc is not None
    pid = private_node.proc.pid
    assert _streaming_put(raw, "/mem/warm", os.urandom(3 * 1024 * 1024), 64 * 1024).status \
        == 200
    before = _peak_rss(pid)
    size = 48 * 1024 * 1024  # one chunk (it used to be held whole, then copied)
    data = os.urandom(size)
    r = _streaming_put(raw, "/mem/big", data, size)
    assert r.status == 200, r.body
    grown = _peak_rss(pid) - before
    assert grown < 24 * 1024 * 1024, f"peak RSS grew by {grown >> 20} MiB for one chunk"
    got = raw.request("GET", "/mem/big")
    assert hashlib.md5(got.body).digest() == hashlib.md5(data).digest()
    assert_log_clean(private_node, [creds[1]])


# ---------------------------------------- 4. non-UTF-8 and non-ASCII in stored headers

def _send_bytes(raw: RawClient, method: str, path: str, query: str,
                headers: list[tuple[str, bytes]], body: bytes = b"") -> Resp:
    """SigV4 over raw header bytes (botocore only signs str), then sent byte for byte.
    Signed: host and every x-amz-* header; others are sent unsigned."""
    amz = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    sha = "UNSIGNED-PAYLOAD"
    hs = [("host", raw.host.encode()), ("x-amz-content-sha256", sha.encode()),
          ("x-amz-date", amz.encode()), *((k.lower(), v) for k, v in headers)]
    signed = sorted((k, v) for k, v in hs if k == "host" or k.startswith("x-amz-"))
    names = ";".join(k for k, _ in signed)
    canonical_query = "&".join(p if "=" in p else p + "=" for p in query.split("&") if p)
    canonical = b"\n".join([method.encode(), path.encode(), canonical_query.encode(),
                            b"".join(k.encode() + b":" + v + b"\n" for k, v in signed),
                            names.encode(), sha.encode()])
    scope = f"{amz[:8]}/garage/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                         hashlib.sha256(canonical).hexdigest()])
    key = ("AWS4" + raw.creds[1]).encode()
    for part in (amz[:8], "garage", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = f"AWS4-HMAC-SHA256 Credential={raw.creds[0]}/{scope}, SignedHeaders={names}, " \
           f"Signature={sig}"
    conn = http.client.HTTPConnection("127.0.0.1", raw.node.s3_port, timeout=30)
    try:
        conn.putrequest(method, path + (f"?{query}" if query else ""), skip_host=True,
                        skip_accept_encoding=True)
        for k, v in [*hs, ("authorization", auth.encode())]:
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Resp(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def _raw_header(resp: Resp, name: str) -> bytes:
    # http.client decodes header bytes as latin-1: encoding back gives what was sent.
    return resp.headers[name].encode("latin-1")


@pytest.mark.parametrize("value", ["caf\u00e9 \u4e2d\u6587".encode(), b"=?UTF-8?B?w6k=?=",
                                   "\u00e9".encode()])
def test_non_ascii_metadata_round_trips(raw: RawClient, bucket: str, value: bytes) -> None:
    r = _send_bytes(raw, "PUT", f"/{bucket}/meta", "",
                    [("x-amz-meta-name", value),
                     ("content-disposition", b'attachment; filename="' + value + b'"')],
                    b"body")
    assert r.status == 200, r.body
    for method in ("GET", "HEAD"):
        got = raw.request(method, f"/{bucket}/meta")
        assert got.status == 200
        assert _raw_header(got, "x-amz-meta-name") == value
        assert _raw_header(got, "content-disposition") == \
            b'attachment; filename="' + value + b'"'


def test_rfc2047_metadata_with_boto3(s3: Any, bucket: str) -> None:
    word = "=?UTF-8?B?w6kgY2Fmw6k=?="
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"name": word})
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == {"name": word}


@pytest.mark.parametrize(("header", "value"), [
    ("x-amz-meta-bad", b"\xff\xfe"), ("x-amz-meta-bad", b"caf\xe9"),
    ("content-disposition", b"attachment; filename=\xff"), ("content-type", b"text/\xc3"),
    ("x-amz-website-redirect-location", b"/\xff"), ("cache-control", b"max-age=\x80"),
])
def test_non_utf8_stored_header_is_400(raw: RawClient, s3: Any, bucket: str, header: str,
                                       value: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"src")
    cases = [("PUT", "/k-put", ""), ("POST", "/k-mpu", "uploads"),
             ("PUT", "/k-copy", "")]
    for method, key, query in cases:
        extra = [("x-amz-copy-source", f"/{bucket}/src".encode()),
                 ("x-amz-metadata-directive", b"REPLACE")] if key == "/k-copy" else []
        r = _send_bytes(raw, method, f"/{bucket}{key}", query, [(header, value), *extra],
                        b"data" if key == "/k-put" else b"")
        assert (r.status, r.code) == (400, "InvalidArgument"), (key, r.status, r.body[:300])
        assert not object_exists(s3, bucket, key[1:])
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize(("headers", "code"), [
    ([("x-amz-copy-source", b"/{b}/src\xff")], "InvalidArgument"),
    ([("x-amz-copy-source", b"/{b}/s%FFrc")], "InvalidArgument"),
    ([("x-amz-copy-source", b"/{b}/src"), ("x-amz-website-redirect-location", b"/\xff")],
     "InvalidArgument"),
    # Client input quoted in an error message: the XML must stay readable.
    ([("x-amz-sdk-checksum-algorithm", b"\xff")], "InvalidRequest"),
])
def test_non_utf8_other_headers_is_400(raw: RawClient, s3: Any, bucket: str,
                                       headers: list[tuple[str, bytes]], code: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"src")
    hs = [(k, v.replace(b"{b}", bucket.encode())) for k, v in headers]
    r = _send_bytes(raw, "PUT", f"/{bucket}/dst", "", hs, b"data")
    assert (r.status, r.code) == (400, code), r.body[:300]
    assert not object_exists(s3, bucket, "dst")


# ------------------------------------------------ 5. aws-chunked in Content-Encoding

@pytest.mark.parametrize(("sent", "stored"), [
    ("aws-chunked, deflate, gzip", "deflate, gzip"), ("aws-chunked", None),
    ("gzip,aws-chunked", "gzip"), ("deflate, AWS-Chunked,  gzip", "deflate,  gzip"),
])
def test_aws_chunked_token_removed(raw: RawClient, s3: Any, bucket: str, sent: str,
                                   stored: str | None) -> None:
    r = _streaming_put(raw, f"/{bucket}/ce", b"payload", 1024, {"Content-Encoding": sent})
    assert r.status == 200, r.body
    got = s3.head_object(Bucket=bucket, Key="ce")
    assert got.get("ContentEncoding") == stored
    assert raw.request("GET", f"/{bucket}/ce").headers.get("content-encoding") == stored


# ---------------------------------------------- 6. response-* overrides with CR/LF

@pytest.mark.parametrize("value", ["text/plain\r\nX-Injected: 1", "a\nb", "a\rb", "nul\x00",
                                   "esc\x1b[31m", "del\x7f"])
@pytest.mark.parametrize("param", ["response-content-type", "response-content-disposition",
                                   "response-cache-control", "response-expires",
                                   "response-content-language", "response-content-encoding"])
def test_response_override_with_control_chars_is_400(raw: RawClient, setup: tuple[str, str],
                                                     param: str, value: str) -> None:
    for method in ("GET", "HEAD"):
        r = raw.request(method, f"/{setup[0]}/obj", f"partNumber=2&{param}={_q(value)}")
        assert r.status == 400, (method, r.status)
        assert "x-injected" not in r.headers
        if method == "GET":
            assert r.code == "InvalidArgument"


def test_response_overrides_still_work(raw: RawClient, setup: tuple[str, str]) -> None:
    value = 'attachment; filename="r\u00e9sum\u00e9.txt"\tx'
    r = raw.request("GET", f"/{setup[0]}/obj",
                    f"partNumber=2&response-content-type=text%2Fplain"
                    f"&response-content-disposition={_q(value)}")
    assert r.status == 206
    assert r.headers["content-type"] == "text/plain"
    assert _raw_header(r, "content-disposition") == value.encode()


# ------------------------------------------------------- 8. us-east-1 scoped signatures

def test_us_east_1_scope_accepted(node: GarageNode, creds: tuple[str, str], raw: RawClient,
                                  bucket: str) -> None:
    r = raw.request("PUT", f"/{bucket}/east", body=b"east", region="us-east-1")
    assert r.status == 200, r.body
    assert raw.request("GET", f"/{bucket}/east", region="us-east-1").body == b"east"
    east = boto3.client("s3", endpoint_url=node.endpoint, region_name="us-east-1",
                        aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))
    east.put_object(Bucket=bucket, Key="east2", Body=b"e2")
    assert east.get_object(Bucket=bucket, Key="east2")["Body"].read() == b"e2"
    # (boto3 presigns us-east-1 URLs with SigV2 by default: sign them in SigV4 here.)
    assert _get_url(raw, _presigned_url(raw, f"/{bucket}/east2", 60, "us-east-1")).body \
        == b"e2"
    r = raw.request("GET", f"/{bucket}/east", region="eu-west-3")
    assert (r.status, r.code) == (400, "AuthorizationHeaderMalformed")


@pytest.fixture(scope="module")
def strict_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarageNode]:
    n = GarageNode(tmp_path_factory.mktemp("strict"))
    n.config_path.write_text(n.config_path.read_text().replace(
        "[s3_api]\n", "[s3_api]\nstrict_region = true\n"))
    n.start()
    yield n
    n.stop()


def test_strict_region_refuses_us_east_1(strict_node: GarageNode) -> None:
    creds = strict_node.create_key("strict")
    strict_node.create_bucket("strict", creds[0])
    raw = RawClient(strict_node, creds)
    r = raw.request("PUT", "/strict/k", body=b"x", region="us-east-1")
    assert (r.status, r.code) == (400, "AuthorizationHeaderMalformed")
    assert r.headers["x-amz-bucket-region"] == "garage"
    assert raw.request("PUT", "/strict/k", body=b"x").status == 200
    # As on AWS, GetBucketLocation answers whatever the scope: that is how SDKs learn it.
    assert raw.request("GET", "/strict", "location", region="us-east-1").status == 200


def test_strict_region_must_be_a_boolean(tmp_path: Path) -> None:
    n = GarageNode(tmp_path / "bad")
    n.config_path.write_text(n.config_path.read_text().replace(
        "[s3_api]\n", '[s3_api]\nstrict_region = "yes"\n'))
    with pytest.raises(RuntimeError, match="strict_region must be true or false"):
        n.start()
    assert "Traceback" not in n.log_path.read_text()


# -------------------------------------------------------- 9. many metadata headers

def _meta(count: int, value_len: int) -> dict[str, str]:
    return {f"k{i:03d}": "v" * value_len for i in range(count)}


def _raw_get_headers(raw: RawClient, path: str) -> tuple[int, list[str]]:
    """GET on a raw socket: http.client refuses responses with more than 100 headers."""
    h = raw.sign("GET", path).headers
    with raw.raw_socket() as sock:
        sock.sendall(head_lines("GET", path, h))
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
    lines = buf.split(b"\r\n\r\n")[0].decode().split("\r\n")
    return int(lines[0].split()[1]), [ln.split(":")[0].lower() for ln in lines[1:]]


def test_metadata_up_to_2kb_in_many_headers(raw: RawClient, s3: Any, bucket: str) -> None:
    meta = _meta(300, 2)  # 300 headers, 1,800 bytes of keys and values
    s3.put_object(Bucket=bucket, Key="many", Body=b"x", Metadata=meta)
    status, names = _raw_get_headers(raw, f"/{bucket}/many")
    assert status == 200
    assert sorted(n for n in names if n.startswith("x-amz-meta-")) == \
        sorted(f"x-amz-meta-{k}" for k in meta)
    s3.copy_object(Bucket=bucket, Key="many2", CopySource=f"{bucket}/many", Metadata=meta,
                   MetadataDirective="REPLACE")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="many3", Metadata=meta)["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="many3", UploadId=uid)
    exact = {"a": "v" * 2047}  # 2,048 bytes: the limit itself
    s3.put_object(Bucket=bucket, Key="exact", Body=b"x", Metadata=exact)
    assert s3.head_object(Bucket=bucket, Key="exact")["Metadata"] == exact


@pytest.mark.parametrize("meta", [{"a": "v" * 2048}, _meta(400, 2)], ids=["one", "400"])
def test_metadata_over_2kb_is_metadata_too_large(s3: Any, bucket: str,
                                                 meta: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    calls = [lambda: s3.put_object(Bucket=bucket, Key="big", Body=b"x", Metadata=meta),
             lambda: s3.copy_object(Bucket=bucket, Key="big", CopySource=f"{bucket}/src",
                                    Metadata=meta, MetadataDirective="REPLACE"),
             lambda: s3.create_multipart_upload(Bucket=bucket, Key="big", Metadata=meta)]
    for call in calls:
        with pytest.raises(ClientError) as ei:
            call()
        assert ei.value.response["Error"]["Code"] == "MetadataTooLarge"
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert not object_exists(s3, bucket, "big")


def test_header_count_stays_bounded(raw: RawClient, bucket: str) -> None:
    headers = {f"x-h{i}": "v" for i in range(600)}
    with raw.raw_socket() as sock:
        sock.sendall(head_lines("GET", f"/{bucket}", {"Host": raw.host, **headers}))
        status, _, _ = read_http_response(sock)
    assert status == 400


# -------------------------------------------------------- 10. conditional writes

@pytest.mark.parametrize("header", ["If-None-Match", "If-Match"])
def test_conditional_writes_not_implemented(raw: RawClient, s3: Any, bucket: str,
                                            header: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"src")
    etag = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    value = "*" if header == "If-None-Match" else etag
    r = raw.request("PUT", f"/{bucket}/cw", headers={header: value}, body=b"new")
    assert (r.status, r.code) == (501, "NotImplemented"), r.body
    r = raw.request("PUT", f"/{bucket}/cw", headers={header: value,
                                                      "x-amz-copy-source": f"/{bucket}/src"})
    assert (r.status, r.code) == (501, "NotImplemented"), r.body
    assert not object_exists(s3, bucket, "cw")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="cw")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="cw", UploadId=uid, PartNumber=1, Body=b"p")
    body = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{part['ETag']}"
            f"</ETag></Part></CompleteMultipartUpload>").encode()
    r = raw.request("POST", f"/{bucket}/cw", f"uploadId={uid}", headers={header: value},
                    body=body)
    assert (r.status, r.code) == (501, "NotImplemented"), r.body
    assert not object_exists(s3, bucket, "cw")
    # Authentication first: anonymous requests learn nothing.
    r = raw.request("PUT", f"/{bucket}/cw", headers={header: value}, body=b"x", sign=False)
    assert (r.status, r.code) == (403, "AccessDenied")
    # Conditional reads and copy-source conditions still work.
    r = raw.request("GET", f"/{bucket}/src", headers={"If-None-Match": etag})
    assert r.status == 304
    s3.copy_object(Bucket=bucket, Key="cw2", CopySource=f"{bucket}/src", CopySourceIfMatch=etag)
    assert object_exists(s3, bucket, "cw2")

