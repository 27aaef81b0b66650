"""What real clients do: Expect: 100-continue, extra query parameters (x-id), version ids
echoed back, <Region> in every error, 501 for what is not implemented."""

from __future__ import annotations

import io
import os
import socket
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient, find_text, head_lines, read_http_response

from pygarage.testing.node import GarageNode


def _err(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


# ---------------------------------------------------------------- Expect: 100-continue

def test_boto3_file_upload_uses_expect(s3: Any, bucket: str) -> None:
    data = os.urandom(2 * 1024 * 1024 + 3)
    s3.put_object(Bucket=bucket, Key="fileobj", Body=io.BytesIO(data))
    assert s3.get_object(Bucket=bucket, Key="fileobj")["Body"].read() == data
    s3.upload_fileobj(io.BytesIO(data[:1000]), bucket, "managed")
    assert s3.get_object(Bucket=bucket, Key="managed")["Body"].read() == data[:1000]


def _expect_request(raw: RawClient, path: str, body: bytes, *, break_sig: bool = False,
                    creds: tuple[str, str] | None = None) -> tuple[socket.socket, bytes]:
    headers = {"Content-Length": str(len(body)), "Expect": "100-continue"}
    h = raw.sign("PUT", path, headers=headers, body=body, creds=creds).headers
    if break_sig:
        h["Authorization"] = h["Authorization"][:-6] + "abcdef"
    sock = raw.raw_socket()
    sock.sendall(head_lines("PUT", path, h))
    return sock, body


def test_expect_continue_by_hand(raw: RawClient, s3: Any, bucket: str) -> None:
    sock, body = _expect_request(raw, f"/{bucket}/expect", b"after the 100" * 100)
    with sock:
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 100"), first
        rest = first.split(b"\r\n\r\n", 1)[1]
        assert rest == b""
        sock.sendall(body)
        status, _, _ = read_http_response(sock)
        assert status == 200
    assert s3.get_object(Bucket=bucket, Key="expect")["Body"].read() == body


@pytest.mark.parametrize("case", ["bad-signature", "no-permission", "no-bucket"])
def test_expect_rejected_without_body(raw: RawClient, s3: Any, bucket: str,
                                      other_creds: tuple[str, str], case: str) -> None:
    target = f"/{bucket}/rejected" if case != "no-bucket" else "/no-such-bucket-zz/k"
    sock, _ = _expect_request(raw, target, os.urandom(50_000),
                              break_sig=case == "bad-signature",
                              creds=other_creds if case == "no-permission" else None)
    with sock:
        sock.settimeout(5)
        # The body is never sent: the final answer must come anyway, with no 100 first.
        status, headers, body = read_http_response(sock)
    want = {"bad-signature": (403, b"SignatureDoesNotMatch"),
            "no-permission": (403, b"AccessDenied"),
            "no-bucket": (404, b"NoSuchBucket")}[case]
    assert status == want[0], body
    assert want[1] in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="rejected")


# ---------------------------------------------------------------- query parameters

def test_unknown_query_parameters_ignored(raw: RawClient, s3: Any, bucket: str) -> None:
    r = raw.request("PUT", f"/{bucket}/xid", "x-id=PutObject", body=b"x-id body")
    assert r.status == 200, r.body
    r = raw.request("GET", f"/{bucket}/xid", "x-id=GetObject&foo=bar&empty=")
    assert (r.status, r.body) == (200, b"x-id body")
    # A mismatching x-id is only a hint.
    r = raw.request("GET", f"/{bucket}/xid", "x-id=PutObject")
    assert (r.status, r.body) == (200, b"x-id body")
    r = raw.request("GET", f"/{bucket}", "list-type=2&x-id=ListObjectsV2&unknown=1")
    assert r.status == 200
    assert find_text(r.xml(), "Key") == "xid"
    r = raw.request("DELETE", f"/{bucket}/xid", "x-id=DeleteObject")
    assert r.status == 204
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="xid")


# ---------------------------------------------------------------- version ids

def test_version_id_round_trip(s3: Any, raw: RawClient, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="v", Body=b"versioned")
    vid = put["VersionId"]
    assert vid and vid != "null"
    got = s3.get_object(Bucket=bucket, Key="v", VersionId=vid)
    assert got["Body"].read() == b"versioned"
    assert got["VersionId"] == vid
    assert s3.head_object(Bucket=bucket, Key="v", VersionId=vid)["VersionId"] == vid
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == \
        b"versioned"
    # Another id of the same form: the real one with its last digit changed (a fixed
    # ending would be the real id once in 256 runs).
    other = vid[:-1] + ("1" if vid[-1] != "1" else "2")
    for bogus in ("0" * 32, "bogus-version", other):
        with pytest.raises(ClientError) as ei:
            s3.get_object(Bucket=bucket, Key="v", VersionId=bogus)
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        with pytest.raises(ClientError) as ei:
            s3.head_object(Bucket=bucket, Key="v", VersionId=bogus)
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        # Deleting a version that does not exist deletes nothing.
        s3.delete_object(Bucket=bucket, Key="v", VersionId=bogus)
        assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"versioned"
    # Multipart and copy results carry version ids that work the same way.
    vid2 = s3.copy_object(Bucket=bucket, Key="v2", CopySource=f"{bucket}/v")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="v2", VersionId=vid2)["Body"].read() == \
        b"versioned"
    r = s3.delete_object(Bucket=bucket, Key="v", VersionId=vid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="v")
    assert _err(ei) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="v", VersionId=vid)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_old_version_id_after_overwrite(s3: Any, bucket: str) -> None:
    old = s3.put_object(Bucket=bucket, Key="ow", Body=b"one")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key="ow", Body=b"two")["VersionId"]
    assert old != new
    assert s3.get_object(Bucket=bucket, Key="ow", VersionId=new)["Body"].read() == b"two"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="ow", VersionId=old)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_multipart_version_id(s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mpv")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mpv", UploadId=uid, PartNumber=1,
                          Body=b"p")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mpv", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    vid = done["VersionId"]
    assert s3.head_object(Bucket=bucket, Key="mpv", VersionId=vid)["ContentLength"] == 1


# ---------------------------------------------------------------- errors and 501s

def test_region_in_every_error(raw: RawClient, s3: Any, bucket: str,
                               other_creds: tuple[str, str]) -> None:
    etag = s3.put_object(Bucket=bucket, Key="e", Body=b"err")["ETag"]
    cases = [
        raw.request("GET", f"/{bucket}/missing"),                               # 404
        raw.request("GET", "/no-such-bucket-qq/k"),                             # 404
        raw.request("GET", f"/{bucket}/e", creds=other_creds),                  # 403
        raw.request("GET", f"/{bucket}/e", sign=False),                         # 403
        raw.request("PUT", "/Bad_Name"),                                        # 400
        raw.request("GET", f"/{bucket}/e", headers={"If-Match": '"x"'}),        # 412
        raw.request("GET", f"/{bucket}/e", headers={"Range": "bytes=100-"}),    # 416
        raw.request("PUT", f"/{bucket}", "tagging", body=b"<Tagging/>"),        # 501
        raw.request("PUT", f"/{bucket}/e", body=b"x", payload_hash="0" * 64),   # 400
        raw.request("POST", f"/{bucket}", "delete", body=b"<nope"),             # 400
        raw.request("GET", f"/{bucket}", region="mars-1"),                      # 400
    ]
    statuses = [c.status for c in cases]
    assert statuses == [404, 404, 403, 403, 400, 412, 416, 501, 400, 400, 400]
    for c in cases:
        assert c.headers["content-type"].startswith("application/xml"), c
        root = c.xml()
        assert root.tag == "Error"
        assert find_text(root, "Region") == "garage", c.body
        assert find_text(root, "Code")
        assert find_text(root, "Message")
    assert etag


UNIMPLEMENTED = [
    ("PUT", "", "tagging", b"<Tagging><TagSet/></Tagging>"),
    ("GET", "", "tagging", b""),
    ("PUT", "", "policy", b'{"Version": "2012-10-17"}'),
    ("GET", "", "policy", b""),
    ("DELETE", "", "policy", b""),
    ("GET", "/obj", "acl", b""),
    ("PUT", "/obj", "acl", b""),
    ("GET", "/obj", "tagging", b""),
    ("PUT", "/obj", "tagging", b"<Tagging/>"),
    ("GET", "", "object-lock", b""),
    ("GET", "", "encryption", b""),
    ("GET", "", "replication", b""),
    ("GET", "", "notification", b""),
    ("GET", "", "logging", b""),
    ("GET", "/obj", "retention", b""),
    ("GET", "/obj", "legal-hold", b""),
    ("POST", "/obj", "select&select-type=2", b"<x/>"),
    ("POST", "/obj", "restore", b"<x/>"),
    ("PUT", "", "versioning", b"<VersioningConfiguration><Status>Enabled</Status>"
                              b"</VersioningConfiguration>"),
]


@pytest.mark.parametrize(("method", "sub", "query", "body"), UNIMPLEMENTED,
                         ids=[f"{m}{s}?{q}" for m, s, q, _ in UNIMPLEMENTED])
def test_not_implemented(raw: RawClient, s3: Any, bucket: str, method: str, sub: str,
                         query: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="obj", Body=b"still here")
    r = raw.request(method, f"/{bucket}{sub}", query, body=body)
    assert r.status == 501, (method, sub, query, r.body)
    assert r.headers["content-type"].startswith("application/xml")
    assert r.code == "NotImplemented"
    assert r.text("Region") == "garage"
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"still here"


def test_not_implemented_boto3(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    calls = [
        lambda: s3.put_bucket_tagging(Bucket=bucket,
                                      Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
        lambda: s3.get_object_acl(Bucket=bucket, Key="o"),
        lambda: s3.put_bucket_policy(Bucket=bucket, Policy='{"Version": "2012-10-17"}'),
        lambda: s3.get_bucket_policy(Bucket=bucket),
        lambda: s3.put_object_tagging(Bucket=bucket, Key="o",
                                      Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
        lambda: s3.get_object_lock_configuration(Bucket=bucket),
        lambda: s3.put_bucket_versioning(Bucket=bucket,
                                         VersioningConfiguration={"Status": "Enabled"}),
    ]
    for call in calls:
        with pytest.raises(ClientError) as ei:
            call()
        assert _err(ei) == (501, "NotImplemented")


def test_not_implemented_needs_auth_first(raw: RawClient, bucket: str,
                                          other_creds: tuple[str, str]) -> None:
    r = raw.request("PUT", f"/{bucket}", "tagging", body=b"<Tagging/>", sign=False)
    assert (r.status, r.code) == (403, "AccessDenied")
    r = raw.request("GET", f"/{bucket}", "policy", region="mars-1")
    assert (r.status, r.code) == (400, "AuthorizationHeaderMalformed")


def test_list_buckets_via_get_root(raw: RawClient, bucket: str, node: GarageNode) -> None:
    r = raw.request("GET", "/")
    assert r.status == 200
    assert bucket in [e.text for e in r.xml().iter() if e.tag.endswith("Name")]
