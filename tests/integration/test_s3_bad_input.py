"""Bad input never yields a 500 or a traceback: malformed XML, truncated and overlong bodies,
broken auth headers, garbage requests on a raw socket. The server keeps serving after each,
and its log ends up with no traceback and no secret key."""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import Any

import pytest
from s3helpers import RawClient, head_lines, object_exists, read_http_response

from pygarage.testing.node import GarageNode


def _still_serving(s3: Any, bucket: str) -> None:
    k = "alive-" + secrets.token_hex(3)
    s3.put_object(Bucket=bucket, Key=k, Body=b"alive")
    assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == b"alive"
    s3.delete_object(Bucket=bucket, Key=k)


MALFORMED = [b"", b"   ", b"garbage", b"<", b"<Delete>", b"<Delete></Nope>",
             b"\xff\xfe\x00<\x00D", b"<?xml version='1.0'?><!DOCTYPE d [<!ENTITY e 'x'>]>"
             b"<Delete><Object><Key>&e;</Key></Object></Delete>",
             b"<a>" * 5000 + b"</a>" * 5000, b"<Wrong><Object><Key>k</Key></Object></Wrong>"]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_xml_everywhere(raw: RawClient, s3: Any, bucket: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"p")
    r = raw.request("POST", f"/{bucket}", "delete", body=body)
    assert (r.status, r.code) == (400, "MalformedXML"), r.body
    r = raw.request("POST", f"/{bucket}/mp", f"uploadId={uid}", body=body)
    assert (r.status, r.code) == (400, "MalformedXML"), r.body
    if body.strip():  # an empty CreateBucket body is a valid request
        name = "mx-" + secrets.token_hex(5)
        r = raw.request("PUT", f"/{name}", body=body)
        assert (r.status, r.code) == (400, "MalformedXML"), r.body
        assert raw.request("HEAD", f"/{name}").status == 404
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"k"
    assert [p["PartNumber"] for p in
            s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]] == [1]


def test_delete_objects_too_many(raw: RawClient, s3: Any, bucket: str) -> None:
    objs = "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(1001))
    r = raw.request("POST", f"/{bucket}", "delete", body=f"<Delete>{objs}</Delete>".encode())
    assert (r.status, r.code) == (400, "MalformedXML")
    objs = "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(1000))
    r = raw.request("POST", f"/{bucket}", "delete", body=f"<Delete>{objs}</Delete>".encode())
    assert r.status == 200


def test_delete_objects_bad_keys_reported(raw: RawClient, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ok", Body=b"x")
    body = (b"<Delete><Object><Key>ok</Key></Object><Object><Key>" + b"k" * 1100
            + b"</Key></Object><Object><Key></Key></Object></Delete>")
    r = raw.request("POST", f"/{bucket}", "delete", body=body)
    assert r.status in (200, 400), r.body
    assert not object_exists(s3, bucket, "ok") or r.status == 400


def _truncated_put(raw: RawClient, bucket: str, key: str, declared: int, sent: bytes) -> None:
    headers = {"Content-Length": str(declared)}
    h = raw.sign("PUT", f"/{bucket}/{key}", headers=headers,
                 payload_hash="UNSIGNED-PAYLOAD").headers
    with raw.raw_socket() as sock:
        sock.sendall(head_lines("PUT", f"/{bucket}/{key}", h))
        sock.sendall(sent)
    # closed: the server sees the end of the stream before Content-Length bytes


@pytest.mark.parametrize(("declared", "sent"), [(1000, 500), (3 * 1024 * 1024, 1536 * 1024),
                                                (100, 0)])
def test_body_shorter_than_content_length(raw: RawClient, s3: Any, bucket: str,
                                          declared: int, sent: int) -> None:
    s3.put_object(Bucket=bucket, Key="short", Body=b"previous version")
    _truncated_put(raw, bucket, "short", declared, os.urandom(sent))
    _truncated_put(raw, bucket, "short-new", declared, os.urandom(sent))
    time.sleep(0.3)
    assert s3.get_object(Bucket=bucket, Key="short")["Body"].read() == b"previous version"
    assert not object_exists(s3, bucket, "short-new")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["short"]
    _still_serving(s3, bucket)


def test_truncated_multipart_part(raw: RawClient, s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="tp")["UploadId"]
    path, query = f"/{bucket}/tp", f"partNumber=1&uploadId={uid}"
    h = raw.sign("PUT", path, query, headers={"Content-Length": "2000000"},
                 payload_hash="UNSIGNED-PAYLOAD").headers
    with raw.raw_socket() as sock:
        sock.sendall(head_lines("PUT", f"{path}?{query}", h))
        sock.sendall(os.urandom(1_200_000))
    time.sleep(0.3)
    assert not s3.list_parts(Bucket=bucket, Key="tp", UploadId=uid).get("Parts")
    _still_serving(s3, bucket)


def _recv_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionError, TimeoutError):
        return data


def test_body_longer_than_content_length_one_segment(raw: RawClient, s3: Any,
                                                     bucket: str) -> None:
    """The extra bytes read as a (garbage) pipelined request: a 400, never a 5xx; the PUT is
    either done with exactly Content-Length bytes, or not at all."""
    body = b"0123456789" + b"EXTRA-BYTES-BEYOND-THE-DECLARED-LENGTH"
    for payload_hash in ("UNSIGNED-PAYLOAD", None):
        h = raw.sign("PUT", f"/{bucket}/long", headers={"Content-Length": "10"},
                     payload_hash=payload_hash, body=body[:10]).headers
        with raw.raw_socket() as sock:
            sock.sendall(head_lines("PUT", f"/{bucket}/long", h) + body)
            sock.settimeout(10)
            answer = _recv_all(sock)
        statuses = [int(line.split()[1]) for line in answer.split(b"\r\n")
                    if line.startswith(b"HTTP/1.")]
        assert statuses and all(st in (200, 400) for st in statuses), answer[:500]
        if object_exists(s3, bucket, "long"):
            assert s3.get_object(Bucket=bucket, Key="long")["Body"].read() == b"0123456789"
    _still_serving(s3, bucket)


@pytest.mark.parametrize("signed_over", ["declared", "everything"])
def test_body_longer_than_content_length(raw: RawClient, s3: Any, bucket: str,
                                         signed_over: str) -> None:
    body = b"0123456789" + b"EXTRA-BYTES"
    signed_body = body[:10] if signed_over == "declared" else body
    h = raw.sign("PUT", f"/{bucket}/long2", headers={"Content-Length": "10"},
                 body=signed_body).headers
    with raw.raw_socket() as sock:
        sock.settimeout(10)
        sock.sendall(head_lines("PUT", f"/{bucket}/long2", h) + body[:10])
        status, _, rbody = read_http_response(sock)
        try:
            sock.sendall(body[10:] + b"\r\n\r\n")
        except OSError:
            pass
        after = _recv_all(sock)
    assert not after.startswith(b"HTTP/1.1 5") and not after.startswith(b"HTTP/1.0 5")
    if signed_over == "declared":
        assert status == 200, rbody
        assert s3.get_object(Bucket=bucket, Key="long2")["Body"].read() == b"0123456789"
    else:
        assert status == 400
        assert b"XAmzContentSHA256Mismatch" in rbody
        assert not object_exists(s3, bucket, "long2")
    _still_serving(s3, bucket)


BROKEN_AUTH = [
    "AWS4-HMAC-SHA256",
    "AWS4-HMAC-SHA256 ",
    "AWS4-HMAC-SHA256 garbage",
    "AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=",
    "AWS4-HMAC-SHA256 Credential=GK1/20200101/garage/s3/aws4_request, SignedHeaders=host, "
    "Signature=zz",
    "AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f/g, SignedHeaders=host;x-amz-date, Signature=00",
    "AWS4-HMAC-SHA256 Credential=GK1/2020/garage/s3/aws4_request,SignedHeaders=HOST,"
    "Signature=0",
    "AWS4-HMAC-SHA256 Credential=GK1/20200101/garage/s3/aws4_request, "
    "Credential=x, SignedHeaders=host, Signature=0",
    "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
    "Bearer token",
    "\u00e9\u00e8",
    "x" * 7000,
]


@pytest.mark.parametrize("auth", BROKEN_AUTH, ids=range(len(BROKEN_AUTH)))
def test_broken_authorization_headers(raw: RawClient, bucket: str, auth: str) -> None:
    h = raw.sign("GET", f"/{bucket}").headers
    h["Authorization"] = auth
    r = raw.send("GET", f"/{bucket}", h)
    assert r.status in (400, 403), (auth, r.status, r.body)
    assert r.code


@pytest.mark.parametrize("headers", [
    {"x-amz-date": "yesterday"}, {"x-amz-date": "20201301T000000Z"},
    {"x-amz-content-sha256": "not-a-hash"}, {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD"},
    {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"},
])
def test_broken_amz_headers(raw: RawClient, bucket: str, headers: dict[str, str]) -> None:
    base = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    h = raw.sign("PUT", f"/{bucket}/bh", headers=base, payload_hash="UNSIGNED-PAYLOAD").headers
    for k, v in headers.items():
        for hk in list(h):
            if hk.lower() == k:
                del h[hk]
        h[k] = v
    r = raw.send("PUT", f"/{bucket}/bh", h, b"body")
    assert r.status in (400, 403), (headers, r.status, r.body)


@pytest.mark.parametrize("query", [
    "X-Amz-Algorithm=AWS4-HMAC-SHA256",
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Date=b&X-Amz-Expires=c"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=d",
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=GK1%2F20200101%2Fgarage%2Fs3%2F"
    "aws4_request&X-Amz-Date=20200101T000000Z&X-Amz-Expires=99999999999999999999"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
    "X-Amz-Algorithm=HMAC&X-Amz-Algorithm=HMAC",
    "AWSAccessKeyId=x&Signature=y&Expires=1",
    "X-Amz-Signature=abc",
])
def test_broken_presigned(raw: RawClient, bucket: str, query: str) -> None:
    r = raw.request("GET", f"/{bucket}/k", query, sign=False)
    assert r.status in (400, 403), (query, r.status, r.body)


@pytest.mark.parametrize("query", [
    "max-keys=99999999999999999999999999", "max-keys=-5", "max-keys=", "list-type=2&max-keys=x",
    "list-type=2&continuation-token=", "list-type=2&start-after=%FF%FE",
    "prefix=%FF", "delimiter=%00", "marker=%C3", "encoding-type=xml", "uploads&max-uploads=zz",
    "versions&max-keys=-1", "list-type=2&list-type=2", "prefix=a&prefix=b",
])
def test_weird_list_queries(raw: RawClient, bucket: str, query: str) -> None:
    r = raw.request("GET", f"/{bucket}", query)
    assert r.status in (200, 400), (query, r.status, r.body)


@pytest.mark.parametrize(("method", "path", "query"), [
    ("GET", "/{b}/k", "partNumber=abc"), ("GET", "/{b}/k", "partNumber=0"),
    ("GET", "/{b}/k", "partNumber=99999999999999999999999"),
    ("PUT", "/{b}/k", "partNumber=1"), ("PUT", "/{b}/k", "uploadId=zz"),
    ("POST", "/{b}/k", ""), ("POST", "/{b}/k", "uploadId="),
    ("GET", "/{b}/k", "uploadId=%FF"), ("DELETE", "/{b}/k", "uploadId=" + "0" * 64),
    ("GET", "/{b}/k", "uploadId=1&max-parts=abc"),
    ("GET", "/{b}/k", "uploadId=1&part-number-marker=-1"),
    ("PATCH", "/{b}/k", ""), ("PATCH", "/{b}", ""), ("POST", "/", ""), ("DELETE", "/", ""),
    ("PUT", "/{b}/k", "versionId=%FF"), ("GET", "/{b}/k", "response-content-type=%0D%0Ax:y"),
])
def test_weird_requests(raw: RawClient, s3: Any, bucket: str, method: str, path: str,
                        query: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    r = raw.request(method, path.format(b=bucket), query, body=b"x" if method != "GET" else b"")
    assert 200 <= r.status < 500, (method, path, query, r.status, r.body)
    if r.status >= 400 and method != "HEAD":
        assert r.code, r.body


def test_copy_source_garbage(raw: RawClient, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"s")
    for src in ("", "/", "nobucket", f"/{bucket}", f"/{bucket}/", "%FF%FE/k", f"{bucket}/%FF",
                f"{bucket}/src?versionId=bogus", "/" * 50, f"/{bucket}/" + "k" * 2000):
        r = raw.request("PUT", f"/{bucket}/dst", headers={"x-amz-copy-source": src})
        assert 400 <= r.status < 500, (src, r.status, r.body)
    for rng in ("", "bytes", "bytes=1-0", "bytes=0-99999999999999999999999999"):
        uid = s3.create_multipart_upload(Bucket=bucket, Key="upc")["UploadId"]
        r = raw.request("PUT", f"/{bucket}/upc", f"partNumber=1&uploadId={uid}",
                        headers={"x-amz-copy-source": f"{bucket}/src",
                                 "x-amz-copy-source-range": rng})
        assert 400 <= r.status < 500, (rng, r.status, r.body)


def test_bad_metadata_headers(raw: RawClient, s3: Any, bucket: str) -> None:
    r = raw.request("PUT", f"/{bucket}/m", body=b"x",
                    headers={"x-amz-meta-big": "v" * 3000})
    assert r.status == 400
    r = raw.request("PUT", f"/{bucket}/m", body=b"x",
                    headers={"x-amz-website-redirect-location": "javascript:alert(1)"})
    assert r.status == 400
    r = raw.request("PUT", f"/{bucket}/m", body=b"x",
                    headers={"x-amz-checksum-crc32": "not base64"})
    assert r.status == 400
    r = raw.request("PUT", f"/{bucket}/m", body=b"x",
                    headers={"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1":
                             "AAAAAAAAAAAAAAAAAAAAAAAAAAA="})
    assert r.status == 400
    r = raw.request("PUT", f"/{bucket}/m", body=b"x",
                    headers={"x-amz-sdk-checksum-algorithm": "MD4"})
    assert r.status == 400
    r = raw.request("PUT", f"/{bucket}/m", body=b"x", headers={"x-amz-checksum-md4": "AA=="})
    assert r.status == 400
    assert not object_exists(s3, bucket, "m")


RAW_GARBAGE = [
    b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET nopath HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"b" * 20000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n",
    b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: \xff\r\nAuthorization: \xff\xfe\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Name: v\r\n\r\n",
]


@pytest.mark.parametrize("payload", RAW_GARBAGE, ids=range(len(RAW_GARBAGE)))
def test_raw_socket_garbage(node: GarageNode, s3: Any, bucket: str, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", node.s3_port), timeout=10) as sock:
        sock.sendall(payload)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionError, TimeoutError):
            pass
    if data:
        status = int(data.split(b" ", 2)[1])
        assert 400 <= status < 500 or status in (200, 505), data[:300]
    _still_serving(s3, bucket)


def test_many_aborted_connections(raw: RawClient, s3: Any, bucket: str) -> None:
    h = raw.sign("PUT", f"/{bucket}/abort", headers={"Content-Length": "100000"},
                 payload_hash="UNSIGNED-PAYLOAD").headers
    for i in range(20):
        sock = raw.raw_socket()
        sock.sendall(head_lines("PUT", f"/{bucket}/abort", h)[: 40 + i * 30])
        sock.close()
    for _ in range(5):
        sock = raw.raw_socket()
        sock.sendall(head_lines("PUT", f"/{bucket}/abort", h) + b"x" * 5000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
    time.sleep(0.3)
    assert not object_exists(s3, bucket, "abort")
    _still_serving(s3, bucket)


def test_log_has_no_traceback_nor_secret(node: GarageNode, creds: tuple[str, str],
                                         other_creds: tuple[str, str]) -> None:
    from s3helpers import assert_log_clean
    assert_log_clean(node, [creds[1], other_creds[1], node.admin_token])
