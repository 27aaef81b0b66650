"""Virtual-hosted-style addressing (bucket.<root_domain>) against a real garage server.

The node's config sets root_domain = ".s3.garage.localhost". `*.localhost` names do not
resolve on every machine, so the test process resolves them to 127.0.0.1 itself (the
requests still go over TCP to the real server, with the real `Host: bucket.s3.garage...`
header that botocore signed)."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from pygarage.testing.node import GarageNode

ROOT = "s3.garage.localhost"
MiB = 1024 * 1024


@pytest.fixture
def localhost_resolves(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kw)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


@pytest.fixture
def vs3(node: GarageNode, creds: tuple[str, str], localhost_resolves: None) -> Any:
    return boto3.client(
        "s3", endpoint_url=f"http://{ROOT}:{node.s3_port}", region_name="garage",
        aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
        config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}))


def _sent_hosts(client: Any) -> list[str]:
    hosts: list[str] = []

    def record(request: Any, **_: Any) -> None:
        hosts.append(urllib.parse.urlsplit(request.url).netloc)
    client.meta.events.register("before-send.s3", record)
    return hosts


def test_vhost_object_lifecycle(vs3: Any, s3: Any, bucket: str, node: GarageNode) -> None:
    hosts = _sent_hosts(vs3)
    body = os.urandom(200_000)
    key = "dir/a b+c&d=é.bin"
    r = vs3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"via": "vhost"})
    assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert hosts[-1] == f"{bucket}.{ROOT}:{node.s3_port}"  # really virtual-hosted

    # What was written through the vhost is what path-style sees, and back.
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    s3.put_object(Bucket=bucket, Key="via-path", Body=b"path")
    assert vs3.get_object(Bucket=bucket, Key="via-path")["Body"].read() == b"path"

    h = vs3.head_object(Bucket=bucket, Key=key)
    assert h["ContentLength"] == len(body) and h["Metadata"] == {"via": "vhost"}
    got = vs3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19")
    assert got["Body"].read() == body[10:20]

    # Bucket-level requests: GET / on the bucket's host lists it.
    keys = [o["Key"] for o in vs3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [key, "via-path"]
    r = vs3.list_objects(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == [key]
    vs3.head_bucket(Bucket=bucket)
    n = len(hosts)
    # botocore always sends GetBucketLocation path-style, to the root domain's host.
    assert vs3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "garage"
    assert hosts.pop() == f"{ROOT}:{node.s3_port}" and len(hosts) == n

    vs3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": key})
    assert vs3.get_object(Bucket=bucket, Key="copied")["Body"].read() == body

    r = vs3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "copied"},
                                                              {"Key": "via-path"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["copied", "via-path"]
    vs3.delete_object(Bucket=bucket, Key=key)
    assert vs3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert set(hosts) == {f"{bucket}.{ROOT}:{node.s3_port}"}

    # The root domain itself (no bucket label) is the service endpoint: ListBuckets.
    assert bucket in [b["Name"] for b in vs3.list_buckets()["Buckets"]]
    assert hosts[-1] == f"{ROOT}:{node.s3_port}"


def test_vhost_multipart(vs3: Any, s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    up = vs3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = [vs3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=i + 1,
                             Body=p)["ETag"] for i, p in enumerate(parts)]
    listed = vs3.list_parts(Bucket=bucket, Key="mp", UploadId=up)["Parts"]
    assert [p["ETag"] for p in listed] == etags
    assert [u["UploadId"] for u in
            vs3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == [up]
    vs3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e}
                                   for i, e in enumerate(etags)]})
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)


def test_vhost_raw_requests(vs3: Any, s3: Any, bucket: str, node: GarageNode) -> None:
    """Hand-made requests to 127.0.0.1 carrying the virtual host in `Host:`."""
    s3.put_object(Bucket=bucket, Key="k/raw.txt", Body=b"raw body")
    url = vs3.generate_presigned_url("get_object", Params={"Bucket": bucket,
                                                           "Key": "k/raw.txt"})
    parts = urllib.parse.urlsplit(url)
    assert parts.netloc == f"{bucket}.{ROOT}:{node.s3_port}"
    assert parts.path == "/k/raw.txt"

    def get(host: str, target: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=10)
        try:
            conn.request("GET", target, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    target = parts.path + "?" + parts.query
    assert get(parts.netloc, target) == (200, b"raw body")
    # The host is signed: the same URL aimed at another bucket's host, or path-style at
    # the bare address (where /k/raw.txt would mean bucket "k"), must not verify.
    for host in (f"other-{bucket}.{ROOT}:{node.s3_port}", f"127.0.0.1:{node.s3_port}"):
        status, body = get(host, target)
        assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body, body

    # Signed for the vhost by hand (botocore SigV4 over a request we send ourselves).
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    creds = vs3._request_signer._credentials
    for host, path, expect in (
            (f"{bucket}.{ROOT}:{node.s3_port}", "/k/raw.txt", b"raw body"),
            (f"{ROOT}:{node.s3_port}", f"/{bucket}/k/raw.txt", b"raw body")):
        req = AWSRequest(method="GET", url=f"http://{host}{path}", headers={"Host": host})
        S3SigV4Auth(creds, "s3", "garage").add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=10)
        try:
            conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
            for name, value in req.headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, expect), host
        finally:
            conn.close()
