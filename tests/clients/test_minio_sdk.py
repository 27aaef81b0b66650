"""The minio Python SDK against a real garage server: object lifecycle, multipart streams,
copies, bulk deletes, presigned URLs, and region discovery for a client given no region."""

from __future__ import annotations

import io
import os
import secrets
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from client_helpers import md5

from pygarage.testing.node import GarageNode

minio = pytest.importorskip("minio", reason="the minio SDK is not installed (pip install minio)")
from minio import Minio  # noqa: E402
from minio.commonconfig import CopySource  # noqa: E402
from minio.deleteobjects import DeleteObject  # noqa: E402
from minio.error import S3Error  # noqa: E402

MiB = 1024 * 1024


@pytest.fixture
def mc(node: GarageNode, creds: tuple[str, str]) -> Minio:
    return Minio(f"127.0.0.1:{node.s3_port}", access_key=creds[0], secret_key=creds[1],
                 secure=False, region="garage")


class _Unsized(io.RawIOBase):
    """A stream of unknown length (read() returns short chunks), like a pipe."""

    def __init__(self, data: bytes):
        self._data = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(n if n >= 0 else len(self._data), 100_000)
        out = bytes(self._data[self._pos:self._pos + n])
        self._pos += len(out)
        return out


def test_buckets_and_objects(mc: Minio, s3: Any, tmp_path: Path) -> None:
    name = "minio-" + secrets.token_hex(4)
    assert not mc.bucket_exists(name)
    mc.make_bucket(name)
    assert mc.bucket_exists(name)
    assert name in [b.name for b in mc.list_buckets()]

    small = os.urandom(5000)
    r = mc.put_object(name, "dir/small.bin", io.BytesIO(small), len(small),
                      content_type="application/x-mini", metadata={"color": "red"})
    assert r.etag == md5(small)

    # Unknown length + 5 MiB parts: a multipart upload of three parts.
    big = os.urandom(12 * MiB + 99)
    r = mc.put_object(name, "dir/stream.bin", _Unsized(big), length=-1, part_size=5 * MiB)
    assert r.etag.endswith("-3")

    st = mc.stat_object(name, "dir/small.bin")
    assert st.size == len(small) and st.etag == md5(small)
    assert st.content_type == "application/x-mini"
    assert st.metadata.get("x-amz-meta-color") == "red"
    st = mc.stat_object(name, "dir/stream.bin")
    assert st.size == len(big)

    resp = mc.get_object(name, "dir/stream.bin")
    try:
        assert resp.read() == big
    finally:
        resp.close()
        resp.release_conn()
    resp = mc.get_object(name, "dir/stream.bin", offset=5 * MiB - 10, length=1000)
    try:
        assert resp.read() == big[5 * MiB - 10:5 * MiB + 990]
    finally:
        resp.close()
        resp.release_conn()
    resp = mc.get_object(name, "dir/small.bin", offset=4000)  # to the end
    try:
        assert resp.read() == small[4000:]
    finally:
        resp.close()
        resp.release_conn()

    f = tmp_path / "up.bin"
    f.write_bytes(os.urandom(70_000))
    mc.fput_object(name, "top.bin", str(f))
    mc.fget_object(name, "top.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == f.read_bytes()

    flat = sorted((o.object_name, o.is_dir) for o in mc.list_objects(name))
    assert flat == [("dir/", True), ("top.bin", False)]
    deep = sorted(o.object_name for o in mc.list_objects(name, recursive=True))
    assert deep == ["dir/small.bin", "dir/stream.bin", "top.bin"]
    pref = [o.object_name for o in mc.list_objects(name, prefix="dir/")]
    assert pref == ["dir/small.bin", "dir/stream.bin"]
    sizes = {o.object_name: o.size for o in mc.list_objects(name, recursive=True)}
    assert sizes["dir/stream.bin"] == len(big)

    r = mc.copy_object(name, "copy.bin", CopySource(name, "dir/small.bin"))
    assert r.etag == md5(small)
    assert s3.get_object(Bucket=name, Key="copy.bin")["Body"].read() == small
    assert mc.stat_object(name, "copy.bin").metadata.get("x-amz-meta-color") == "red"

    mc.remove_object(name, "copy.bin")
    with pytest.raises(S3Error) as exc:
        mc.stat_object(name, "copy.bin")
    assert exc.value.code == "NoSuchKey"

    errs = list(mc.remove_objects(name, [DeleteObject(o.object_name)
                                         for o in mc.list_objects(name, recursive=True)]
                                  + [DeleteObject("never-existed")]))
    assert errs == []
    assert list(mc.list_objects(name, recursive=True)) == []
    mc.remove_bucket(name)
    assert not mc.bucket_exists(name)


def test_presigned_get(mc: Minio, bucket: str) -> None:
    data = b"presigned payload " * 100
    mc.put_object(bucket, "p/x y+z.txt", io.BytesIO(data), len(data))
    url = mc.presigned_get_object(bucket, "p/x y+z.txt", expires=timedelta(minutes=5))
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.read() == data

    # Overriding response headers through the signed query.
    url = mc.presigned_get_object(bucket, "p/x y+z.txt", expires=timedelta(minutes=5),
                                  response_headers={"response-content-type": "text/x-over"})
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"] == "text/x-over"

    # Signed two hours ago for one minute: expired.
    old = mc.presigned_get_object(bucket, "p/x y+z.txt", expires=timedelta(seconds=60),
                                  request_date=datetime.now(UTC) - timedelta(hours=2))
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(old, timeout=10)
    assert exc.value.code == 403
    assert b"<Code>AccessDenied</Code>" in exc.value.read()

    # A tampered signature is refused too.
    bad = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(bad, timeout=10)
    assert exc.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in exc.value.read()


def test_client_without_region(node: GarageNode, creds: tuple[str, str], bucket: str) -> None:
    """No region configured: minio asks GetBucketLocation (signed for us-east-1) and then
    signs everything for the region it learnt."""
    mc = Minio(f"127.0.0.1:{node.s3_port}", access_key=creds[0], secret_key=creds[1],
               secure=False)
    assert mc.bucket_exists(bucket)
    assert not mc.bucket_exists("no-such-" + secrets.token_hex(4))
    data = os.urandom(3000)
    mc.put_object(bucket, "noregion", io.BytesIO(data), len(data))
    resp = mc.get_object(bucket, "noregion")
    try:
        assert resp.read() == data
    finally:
        resp.close()
        resp.release_conn()
    assert [o.object_name for o in mc.list_objects(bucket)] == ["noregion"]
    url = mc.presigned_get_object(bucket, "noregion")
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == data
    mc.remove_object(bucket, "noregion")
    assert list(mc.list_objects(bucket)) == []


def test_compose_and_listing_variants(mc: Minio, bucket: str) -> None:
    a, b = os.urandom(5 * MiB + 7), os.urandom(3 * MiB)
    ra = mc.put_object(bucket, "src/a", io.BytesIO(a), len(a))
    mc.put_object(bucket, "src/b", io.BytesIO(b), len(b))
    # compose_object: UploadPartCopy of whole objects and of a byte range.
    from minio.commonconfig import ComposeSource
    r = mc.compose_object(bucket, "composed", [
        ComposeSource(bucket, "src/a"), ComposeSource(bucket, "src/b", offset=100, length=50),
    ])
    assert r.etag.endswith("-2")
    resp = mc.get_object(bucket, "composed")
    try:
        assert resp.read() == a + b[100:150]
    finally:
        resp.close()
        resp.release_conn()

    # The version id returned by PUT is accepted back.
    assert ra.version_id
    st = mc.stat_object(bucket, "src/a", version_id=ra.version_id)
    assert st.size == len(a)
    versions = [(o.object_name, o.is_latest) for o in
                mc.list_objects(bucket, recursive=True, include_version=True)]
    assert sorted(v[0] for v in versions) == ["composed", "src/a", "src/b"]
    assert all(v[1] for v in versions), versions

    v1 = [o.object_name for o in mc.list_objects(bucket, recursive=True, use_api_v1=True)]
    assert v1 == ["composed", "src/a", "src/b"]
    after = [o.object_name for o in mc.list_objects(bucket, recursive=True,
                                                    start_after="src/a")]
    assert after == ["src/b"]


def test_region_scope_accepted_for_get_bucket_location(node: GarageNode,
                                                        creds: tuple[str, str],
                                                        bucket: str) -> None:
    """What the region-less client relies on, request by request: GetBucketLocation signed
    for us-east-1 answers the real region; so does every other operation signed for us-east-1
    (unless strict_region: see tests/integration/test_hardening_input.py); another region is
    refused with AuthorizationHeaderMalformed naming the right region."""
    import http.client

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def call(region: str, query: str) -> tuple[int, bytes]:
        host = f"127.0.0.1:{node.s3_port}"
        url = f"http://{host}/{bucket}{query}"
        req = AWSRequest(method="GET", url=url, headers={"Host": host})
        S3SigV4Auth(Credentials(*creds), "s3", region).add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=10)
        try:
            conn.putrequest("GET", f"/{bucket}{query}", skip_host=True,
                            skip_accept_encoding=True)
            for name, value in req.headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    status, body = call("us-east-1", "?location")
    assert status == 200 and b">garage</LocationConstraint>" in body, body
    status, body = call("garage", "?location")
    assert status == 200 and b">garage</LocationConstraint>" in body, body
    for query in ("", "?list-type=2"):
        status, body = call("us-east-1", query)
        assert status == 200 and b"<ListBucketResult" in body, body
    for region, query in (("eu-west-1", "?location"), ("eu-west-1", ""),
                          ("us-west-2", "?list-type=2")):
        status, body = call(region, query)
        assert status == 400, (region, query, body)
        assert b"<Code>AuthorizationHeaderMalformed</Code>" in body
        assert b"<Region>garage</Region>" in body
