"""Bucket lifecycle against real server processes: the S3 configuration endpoints (boto3 and
raw HTTP, AWS's errors), and the daily lifecycle worker of a node restarted with its clock
shifted by whole days (PYGARAGE_TEST_CLOCK_OFFSET_SECS), so days pass without waiting."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient

from pygarage.testing.node import GarageNode
from pygarage.util.clock import OFFSET_ENV

DAY = 86_400
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


RULES: list[dict[str, Any]] = [
    {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
     "Expiration": {"Days": 30}},
    {"ID": "dated", "Status": "Disabled",
     "Filter": {"And": {"Prefix": "tmp/", "ObjectSizeGreaterThan": 10,
                        "ObjectSizeLessThan": 1000}},
     "Expiration": {"Date": datetime(2031, 1, 31, tzinfo=UTC)}},
    {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
    {"ID": "big", "Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 1000000},
     "Expiration": {"Days": 365}},
]


def test_put_get_delete_round_trip(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(e) == (404, "NoSuchLifecycleConfiguration")
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration={"Rules": RULES})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == RULES
    # A new configuration replaces the old one entirely.
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration={"Rules": RULES[:1]})
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == RULES[:1]
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(e) == (404, "NoSuchLifecycleConfiguration")
    s3.delete_bucket_lifecycle(Bucket=bucket)  # idempotent


@pytest.mark.parametrize("rules,expected", [
    ([{"ID": "x" * 256, "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}],
     (400, "InvalidArgument")),
    ([{"ID": "same", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}},
      {"ID": "same", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 2}}],
     (400, "InvalidArgument")),
    ([{"ID": "a", "Status": "On", "Filter": {}, "Expiration": {"Days": 1}}],
     (400, "MalformedXML")),
    ([{"ID": "a", "Status": "Enabled", "Filter": {},
       "Expiration": {"Date": datetime(2031, 1, 31, 12, tzinfo=UTC)}}],
     (400, "InvalidArgument")),
    ([{"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 0}}],
     (400, "InvalidArgument")),
    ([{"ID": "a", "Status": "Enabled", "Filter": {},
       "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}], (501, "NotImplemented")),
    ([{"ID": "a", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
       "Expiration": {"Days": 1}}], (501, "NotImplemented")),
    ([{"ID": "a", "Status": "Enabled", "Filter": {},
       "NoncurrentVersionExpiration": {"NoncurrentDays": 3}}], (501, "NotImplemented")),
])
def test_aws_validation_errors(s3: Any, bucket: str, rules: list[dict[str, Any]],
                               expected: tuple[int, str]) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                              LifecycleConfiguration={"Rules": rules})
    assert error_of(e) == expected
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(e) == (404, "NoSuchLifecycleConfiguration")


def _put_raw(raw: RawClient, bucket: str, body: bytes, md5: bool = True) -> Any:
    headers = {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()} \
        if md5 else {}
    return raw.request("PUT", f"/{bucket}", "lifecycle", headers=headers, body=body)


def test_raw_http(raw: RawClient, bucket: str) -> None:
    ok = (f"<LifecycleConfiguration {NS}><Rule><ID>r</ID><Prefix>old/</Prefix>"
          "<Status>Enabled</Status><Expiration><Date>2031-01-31T00:00:00Z</Date>"
          "</Expiration></Rule></LifecycleConfiguration>").encode()
    assert _put_raw(raw, bucket, ok).status == 200
    r = raw.request("GET", f"/{bucket}", "lifecycle")
    assert r.status == 200 and r.headers["content-type"].startswith("application/xml")
    assert b"<Filter><Prefix>old/</Prefix></Filter>" in r.body
    assert b"<Date>2031-01-31T00:00:00.000Z</Date>" in r.body
    for bad, code in [(b"<LifecycleConfiguration><Rule>", "MalformedXML"),
                      (f"<LifecycleConfiguration {NS}/>".encode(), "MalformedXML"),
                      (b"<!DOCTYPE x [<!ENTITY a 'b'>]><LifecycleConfiguration/>",
                       "MalformedXML"),
                      (ok.replace(b"<ID>r</ID>", b"<ID>r</ID><Bogus/>"), "MalformedXML"),
                      (ok.replace(b"T00:00:00Z", b"T00:30:00Z"), "InvalidArgument")]:
        r = _put_raw(raw, bucket, bad)
        assert (r.status, r.code) == (400, code), r.body
    r = _put_raw(raw, bucket, ok.replace(b"old/", b"new/"), md5=False)
    assert r.status == 200  # Content-MD5 is checked when given, not required
    r = raw.request("PUT", f"/{bucket}", "lifecycle",
                    headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()}, body=ok)
    assert (r.status, r.code) == (400, "BadDigest")
    assert b"new/" in raw.request("GET", f"/{bucket}", "lifecycle").body
    r = raw.request("DELETE", f"/{bucket}", "lifecycle")
    assert r.status == 204
    r = raw.request("GET", f"/{bucket}", "lifecycle")
    assert (r.status, r.code) == (404, "NoSuchLifecycleConfiguration")


def test_needs_owner_permission(node: GarageNode, s3: Any, other_s3: Any, bucket: str,
                                other_creds: tuple[str, str]) -> None:
    bid = node.admin("GetBucketInfo", {"globalAlias": bucket})["id"]
    node.admin("AllowBucketKey", body={"bucketId": bid, "accessKeyId": other_creds[0],
                                       "permissions": {"read": True, "write": True}})
    with pytest.raises(ClientError) as e:
        other_s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": RULES[:1]})
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        other_s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(e) == (403, "AccessDenied")


# ---------------------------------------------------------------- the daily worker

WORKER = "object lifecycle worker"


def _worker(node: GarageNode) -> dict[str, Any]:
    res = node.admin("ListWorkers", body={})
    workers = next(iter(res["success"].values()))
    return dict(next(w for w in workers if w["name"] == WORKER))


def _await_pass(node: GarageNode, day: date) -> list[str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        w = _worker(node)
        if f"Last completed: {day}" in w["freeform"]:
            return list(w["freeform"])
        time.sleep(0.1)
    raise AssertionError(f"no lifecycle pass for {day}: {_worker(node)}")


def _start(node: GarageNode, monkeypatch: pytest.MonkeyPatch, days: float) -> None:
    node.stop()
    monkeypatch.setenv(OFFSET_ENV, str(int(days * DAY)))
    node.start()


def _block_files(root: Path) -> list[Path]:
    return [p for p in (root / "data").rglob("*") if p.is_file()]


def test_daily_worker_expires_and_aborts(private_node: GarageNode,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    node = private_node
    today = datetime.now(UTC).date()
    if datetime.now(UTC).hour == 23 and datetime.now(UTC).minute >= 55:
        pytest.skip("too close to midnight UTC for day arithmetic")
    monkeypatch.delenv(OFFSET_ENV, raising=False)
    node.start()
    # A fresh node has nothing to do: its first pass completes right away.
    _await_pass(node, today)
    assert WORKER in node.cli("worker", "list").stdout
    creds = node.create_key("lc")
    name = "lc-" + secrets.token_hex(4)
    node.create_bucket(name, creds[0])
    s3 = node.s3(*creds)
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
         "Expiration": {"Days": 1}},
        {"ID": "disabled", "Status": "Disabled", "Filter": {"Prefix": "keep/"},
         "Expiration": {"Days": 1}},
        {"ID": "sized", "Status": "Enabled",
         "Filter": {"And": {"Prefix": "sz/", "ObjectSizeGreaterThan": 50}},
         "Expiration": {"Days": 1}},
        {"ID": "dated", "Status": "Enabled", "Filter": {"Prefix": "dated/"},
         "Expiration": {"Date": datetime.combine(today + timedelta(days=2),
                                                 datetime.min.time(), UTC)}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "up/"},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    s3.put_object(Bucket=name, Key="logs/a.txt", Body=b"a" * 100)
    s3.put_object(Bucket=name, Key="logs/big.bin", Body=os.urandom(1_500_000))
    s3.put_object(Bucket=name, Key="keep/a.txt", Body=b"k" * 100)
    s3.put_object(Bucket=name, Key="sz/small", Body=b"s" * 10)
    s3.put_object(Bucket=name, Key="sz/large", Body=b"l" * 100)
    up = s3.create_multipart_upload(Bucket=name, Key="up/pending")["UploadId"]
    s3.upload_part(Bucket=name, Key="up/pending", UploadId=up, PartNumber=1,
                   Body=os.urandom(200_000))
    keep_up = s3.create_multipart_upload(Bucket=name, Key="other/pending")["UploadId"]
    assert len(_block_files(node.root)) == 3

    def keys() -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])]

    everything = ["keep/a.txt", "logs/a.txt", "logs/big.bin", "sz/large", "sz/small"]
    # Day + 1: the objects are not one day old yet (days count from the next midnight).
    _start(node, monkeypatch, 1)
    free = _await_pass(node, today + timedelta(days=1))
    assert "Objects expired: 0" in free and "Multipart uploads aborted: 0" in free
    assert keys() == everything
    # Day + 2: expired by Days, filters and status honoured, stale upload aborted.
    _start(node, monkeypatch, 2)
    free = _await_pass(node, today + timedelta(days=2))
    assert "Objects expired: 3" in free and "Multipart uploads aborted: 1" in free
    assert keys() == ["keep/a.txt", "sz/small"]
    uploads = s3.list_multipart_uploads(Bucket=name).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [keep_up]
    with pytest.raises(ClientError):
        s3.list_parts(Bucket=name, Key="up/pending", UploadId=up)
    info = node.admin("GetBucketInfo", {"globalAlias": name})
    assert (info["objects"], info["bytes"], info["unfinishedUploads"]) == (2, 110, 1)
    # Written after today's pass, matched by the Date rule: safe until tomorrow's pass.
    s3.put_object(Bucket=name, Key="dated/x", Body=b"d")
    # A restart later the same day does not run the pass again; the block GC delay (10
    # minutes) has passed: the expired objects' blocks are gone from disk.
    _start(node, monkeypatch, 2 + 15 / (24 * 60))
    free = _await_pass(node, today + timedelta(days=2))
    assert not any(line.startswith("Objects expired") for line in free), free
    deadline = time.monotonic() + 30
    while _block_files(node.root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _block_files(node.root) == []
    assert "dated/x" in keys()
    # Day + 3: the Date rule applies.
    _start(node, monkeypatch, 3)
    free = _await_pass(node, today + timedelta(days=3))
    assert "Objects expired: 1" in free
    assert keys() == ["keep/a.txt", "sz/small"]
    log = (node.root / "server.log").read_text()
    assert "Traceback" not in log and f"{OFFSET_ENV} is set" in log
