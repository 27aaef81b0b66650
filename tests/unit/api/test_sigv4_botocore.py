"""Differential tests: requests signed by botocore (the reference client) must verify."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any
from unittest import mock
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from pygarage.api.common import errors
from pygarage.api.common.signature.checksum import Checksummer, requested_algorithm, verify
from pygarage.api.common.signature.chunked import AwsChunkedDecoder
from pygarage.api.common.signature.sigv4 import SignedRequest, verify_request

KEY, SECRET, REGION = "GKa1b2c3d4e5f60718293a4b5c", "9f8e7d6c5b4a39281706f5e4d3c2b1a0" * 2, "garage"
ENDPOINT = "http://localhost:3900"
NOW = datetime(2024, 6, 1, 10, 30, 0, tzinfo=UTC)
ODD_KEYS = ["&+-é\"/ ", "a b/c+d", "日本語/ファイル.txt", "sp  ace", "~tilde*star'quote(paren)",
            "%41%", "semi;colon=eq?q#hash", "a//b/./c/../d", "emoji-😀", "tab\tnl"]


def lookup(key_id: str) -> str | None:
    return SECRET if key_id == KEY else None


def to_signed(method: str, url: str, headers: Any) -> SignedRequest:
    parts = urlsplit(url)
    pairs = [(str(k), v.decode() if isinstance(v, bytes) else str(v)) for k, v in headers.items()]
    if not any(k.lower() == "host" for k, _ in pairs):
        pairs.append(("Host", parts.netloc))  # what the HTTP client would send
    return SignedRequest(method, parts.path, parts.query, pairs)


def botocore_sign(method: str, url: str, headers: dict[str, str], body: bytes,
                  *, presign: int | None = None) -> SignedRequest:
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    creds = Credentials(KEY, SECRET)
    signer = (S3SigV4QueryAuth(creds, "s3", REGION, expires=presign) if presign
              else S3SigV4Auth(creds, "s3", REGION))
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer.add_auth(request)
    return to_signed(method, request.url, request.headers)


def random_text(rng: random.Random) -> str:
    alphabet = "abcXYZ019 -_.~!*'()&+=/?;:@$,%#[]\"é日😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


@pytest.mark.parametrize("seed", range(60))
def test_random_requests_signed_by_botocore_verify(seed: int) -> None:
    rng = random.Random(seed)
    method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD"])
    key = rng.choice(ODD_KEYS) if rng.random() < 0.5 else random_text(rng)
    path = "/bucket/" + quote(key, safe="/~")
    params = [(random_text(rng) or "p", random_text(rng)) for _ in range(rng.randint(0, 4))]
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in params)
    if rng.random() < 0.3:
        query = (query + "&" if query else "") + rng.choice(["acl", "uploads", "tagging"])
    url = f"{ENDPOINT}{path}" + (f"?{query}" if query else "")
    headers = {"Content-Type": "application/octet-stream"}
    if rng.random() < 0.5:
        headers["x-amz-meta-note"] = "  spaced   out  value "
    if rng.random() < 0.5:
        headers["Range"] = "bytes=0-9"
    body = rng.randbytes(rng.randint(0, 64))
    req = botocore_sign(method, url, headers, body)
    result = verify_request(req, lookup_secret=lookup, region=REGION, now=NOW)
    assert result is not None and result.key_id == KEY and not result.presigned
    assert len(result.content_sha256) == 64
    # A different secret must not verify the same request.
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify_request(req, lookup_secret=lambda k: SECRET + "x", region=REGION, now=NOW)


@pytest.mark.parametrize("seed", range(30))
def test_random_presigned_urls_from_botocore_verify(seed: int) -> None:
    rng = random.Random(1000 + seed)
    key = rng.choice(ODD_KEYS) if rng.random() < 0.5 else random_text(rng)
    url = f"{ENDPOINT}/bucket/{quote(key, safe='/~')}"
    if rng.random() < 0.5:
        url += "?response-content-disposition=" + quote('attachment; filename="é x.txt"', safe="")
    req = botocore_sign("GET", url, {}, b"", presign=rng.randint(1, 604800))
    result = verify_request(req, lookup_secret=lookup, region=REGION, now=NOW)
    assert result is not None and result.presigned
    assert result.content_sha256 == "UNSIGNED-PAYLOAD"


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _client(endpoint: str = ENDPOINT, region: str = REGION) -> Any:
    client = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                          aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          config=Config(s3={"addressing_style": "path"},
                                        retries={"max_attempts": 1}))

    def capture(request: Any, **_: Any) -> None:
        raise _Captured(request)

    client.meta.events.register("before-send.s3", capture)
    return client


def _captured(call: Any, **kwargs: Any) -> Any:
    with pytest.raises(_Captured) as exc:
        call(**kwargs)
    return exc.value.request


@pytest.mark.parametrize("key", ODD_KEYS)
def test_boto3_client_operations_verify(key: str) -> None:
    client = _client()
    calls = [
        (client.put_object, {"Bucket": "bkt", "Key": key, "Body": b"hello",
                             "Metadata": {"note": "v  a  l"}, "ContentType": "text/plain"}),
        (client.get_object, {"Bucket": "bkt", "Key": key, "Range": "bytes=0-1"}),
        (client.list_objects_v2, {"Bucket": "bkt", "Prefix": key, "Delimiter": "/"}),
        (client.copy_object, {"Bucket": "bkt", "Key": key + "2",
                              "CopySource": {"Bucket": "bkt", "Key": key}}),
        (client.get_object_acl, {"Bucket": "bkt", "Key": key}),
        (client.delete_objects, {"Bucket": "bkt", "Delete": {"Objects": [{"Key": key}]}}),
    ]
    for call, kwargs in calls:
        sent = _captured(call, **kwargs)
        req = to_signed(sent.method, sent.url, sent.headers)
        result = verify_request(req, lookup_secret=lookup, region=REGION,
                                now=datetime.now(UTC))
        assert result is not None and result.key_id == KEY, (call, kwargs)


def test_boto3_presigned_url_verifies() -> None:
    client = _client()
    for key in ODD_KEYS:
        url = client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": key},
                                            ExpiresIn=600)
        req = to_signed("GET", url, {})
        result = verify_request(req, lookup_secret=lookup, region=REGION,
                                now=datetime.now(UTC))
        assert result is not None and result.presigned


def test_boto3_wrong_region_error_has_bucket_region() -> None:
    client = _client(region="us-east-1")
    sent = _captured(client.head_bucket, Bucket="bkt")
    with pytest.raises(errors.AuthorizationHeaderMalformed) as exc:
        verify_request(to_signed(sent.method, sent.url, sent.headers), lookup_secret=lookup,
                       region=REGION, now=datetime.now(UTC))
    assert exc.value.headers["x-amz-bucket-region"] == REGION


@pytest.mark.parametrize("size", [0, 1, 70_000, 1_100_000])
def test_boto3_streaming_trailer_upload_end_to_end(size: int) -> None:
    # Over https boto3 sends STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer.
    client = _client("https://localhost:3900")
    payload = random.Random(size).randbytes(size)
    sent = _captured(client.put_object, Bucket="bkt", Key="big/é", Body=payload)
    result = verify_request(to_signed(sent.method, sent.url, sent.headers), lookup_secret=lookup,
                            region=REGION, now=datetime.now(UTC))
    assert result is not None
    assert result.content_sha256 == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v)
               for k, v in sent.headers.items()}
    algo = requested_algorithm(headers)
    decoder = AwsChunkedDecoder(context=result.context, signed=False,
                                expect_trailer=headers["x-amz-trailer"])
    summer = Checksummer([algo] if algo else [])
    body = sent.body.read()
    for i in range(0, len(body), 65_000):
        for piece in decoder.feed(body[i:i + 65_000]):
            summer.update(piece)
    trailers = decoder.finish()
    assert decoder.decoded_length == int(headers["x-amz-decoded-content-length"]) == size
    assert algo == "crc32"
    verify(trailers["x-amz-checksum-crc32"], "crc32", summer.result())
