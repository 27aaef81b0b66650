"""Bucket endpoints: ListBuckets, CreateBucket (names, already-exists cases), HeadBucket,
DeleteBucket, GetBucketLocation, GetBucketVersioning."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient, find_all

from pygarage.testing.node import GarageNode


def _err(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def _name() -> str:
    return "c-" + secrets.token_hex(6)


def test_list_buckets(s3: Any, bucket: str) -> None:
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names
    assert names == sorted(names)
    created = s3.list_buckets()["Buckets"][names.index(bucket)]["CreationDate"]
    assert created.year >= 2024


def test_create_head_delete(s3: Any) -> None:
    name = _name()
    r = s3.create_bucket(Bucket=name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["Location"] == "/" + name
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    s3.delete_object(Bucket=name, Key="k")
    r = s3.delete_bucket(Bucket=name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.head_bucket(Bucket=name)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_with_location_constraint(s3: Any) -> None:
    name = _name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "garage"})
    s3.head_bucket(Bucket=name)
    with pytest.raises(ClientError) as ei:
        s3.create_bucket(Bucket=_name(),
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert _err(ei)[0] == 400


@pytest.mark.parametrize("name", [
    "ab", "a" * 64, "Upper-case", "under_score", "-dash-start", "dash-end-", "dot..dot",
    "192.168.1.1", "xn--punycode", "name-s3alias", "sp ace", "é-accent",
])
def test_invalid_bucket_names(raw: RawClient, name: str) -> None:
    from urllib.parse import quote
    r = raw.request("PUT", "/" + quote(name))
    assert r.status == 400, (name, r.body)
    assert r.code == "InvalidBucketName"


@pytest.mark.parametrize("name", ["abc", "a" * 63, "with.dots.ok", "0123-digits"])
def test_valid_bucket_names(s3: Any, name: str) -> None:
    name = name if len(name) == 63 else name + "-" + secrets.token_hex(3)
    s3.create_bucket(Bucket=name)
    try:
        s3.head_bucket(Bucket=name)
    finally:
        s3.delete_bucket(Bucket=name)


def test_create_already_owned(s3: Any) -> None:
    name = _name()
    s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as ei:
        s3.create_bucket(Bucket=name)
    assert _err(ei) == (409, "BucketAlreadyOwnedByYou")


def test_create_already_owned_global(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as ei:
        s3.create_bucket(Bucket=bucket)
    assert _err(ei) == (409, "BucketAlreadyOwnedByYou")


def test_create_exists_for_other_key(node: GarageNode, s3: Any,
                                     other_creds: tuple[str, str]) -> None:
    name = _name()
    node.create_bucket(name, other_creds[0])  # global alias, owned by the other key
    with pytest.raises(ClientError) as ei:
        s3.create_bucket(Bucket=name)
    assert _err(ei) == (409, "BucketAlreadyExists")
    # And the other key can still use it; we cannot.
    other = node.s3(*other_creds)
    other.put_object(Bucket=name, Key="mine", Body=b"x")
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=name, Key="mine")
    assert _err(ei) == (403, "AccessDenied")


def test_create_without_permission(node: GarageNode) -> None:
    key = node.create_key("no-create", create_bucket=False)
    client = node.s3(*key)
    with pytest.raises(ClientError) as ei:
        client.create_bucket(Bucket=_name())
    assert _err(ei) == (403, "AccessDenied")


def test_create_malformed_xml(raw: RawClient) -> None:
    for body in (b"<CreateBucketConfiguration>", b"not xml at all",
                 b"<Other><LocationConstraint>garage</LocationConstraint></Other>",
                 b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>"
                 b"<CreateBucketConfiguration/>"):
        name = _name()
        r = raw.request("PUT", f"/{name}", body=body)
        assert (r.status, r.code) == (400, "MalformedXML"), (body, r.body)
        assert raw.request("HEAD", f"/{name}").status == 404


def test_head_unknown_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as ei:
        s3.head_bucket(Bucket=_name())
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_unknown_bucket_is_no_such_bucket(s3: Any, raw: RawClient) -> None:
    name = _name()
    for call in (lambda: s3.list_objects_v2(Bucket=name),
                 lambda: s3.get_object(Bucket=name, Key="k"),
                 lambda: s3.put_object(Bucket=name, Key="k", Body=b"x"),
                 lambda: s3.delete_bucket(Bucket=name)):
        with pytest.raises(ClientError) as ei:
            call()
        assert _err(ei) == (404, "NoSuchBucket")
    r = raw.request("GET", f"/{name}/k")
    assert r.text("Region") == "garage"


def test_delete_non_empty(s3: Any) -> None:
    name = _name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="left", Body=b"x")
    with pytest.raises(ClientError) as ei:
        s3.delete_bucket(Bucket=name)
    assert _err(ei) == (409, "BucketNotEmpty")
    s3.head_bucket(Bucket=name)
    assert s3.get_object(Bucket=name, Key="left")["Body"].read() == b"x"
    s3.delete_object(Bucket=name, Key="left")
    assert s3.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_bucket_with_pending_upload(s3: Any) -> None:
    """As AWS and Garage: unfinished multipart uploads do not keep a bucket alive (they are
    aborted; tests/integration/test_races.py checks their blocks are freed)."""
    name = _name()
    s3.create_bucket(Bucket=name)
    s3.create_multipart_upload(Bucket=name, Key="pending")
    assert s3.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.head_bucket(Bucket=name)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_get_bucket_location(s3: Any, raw: RawClient, bucket: str) -> None:
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "garage"
    r = raw.request("GET", f"/{bucket}", "location")
    assert r.status == 200
    assert r.xml().text == "garage"


def test_get_bucket_versioning(s3: Any, raw: RawClient, bucket: str) -> None:
    r = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in r
    assert "MFADelete" not in r
    resp = raw.request("GET", f"/{bucket}", "versioning")
    assert resp.status == 200
    assert resp.xml().tag.endswith("VersioningConfiguration")
    assert not find_all(resp.xml(), "Status")


def test_other_key_access_denied(other_s3: Any, bucket: str, s3: Any) -> None:
    s3.put_object(Bucket=bucket, Key="secret", Body=b"s")
    for call in (lambda: other_s3.get_object(Bucket=bucket, Key="secret"),
                 lambda: other_s3.head_object(Bucket=bucket, Key="secret"),
                 lambda: other_s3.put_object(Bucket=bucket, Key="x", Body=b"x"),
                 lambda: other_s3.list_objects_v2(Bucket=bucket),
                 lambda: other_s3.delete_object(Bucket=bucket, Key="secret"),
                 lambda: other_s3.delete_bucket(Bucket=bucket)):
        with pytest.raises(ClientError) as ei:
            call()
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert s3.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"s"
    assert bucket not in [b["Name"] for b in other_s3.list_buckets()["Buckets"]]


def test_read_only_key(node: GarageNode, s3: Any, bucket: str) -> None:
    key = node.create_key("read-only")
    b = node.admin("GetBucketInfo", query={"globalAlias": bucket})
    node.admin("AllowBucketKey", body={"bucketId": b["id"], "accessKeyId": key[0],
                                       "permissions": {"read": True}})
    ro = node.s3(*key)
    s3.put_object(Bucket=bucket, Key="r", Body=b"r")
    assert ro.get_object(Bucket=bucket, Key="r")["Body"].read() == b"r"
    assert [o["Key"] for o in ro.list_objects_v2(Bucket=bucket)["Contents"]] == ["r"]
    with pytest.raises(ClientError) as ei:
        ro.put_object(Bucket=bucket, Key="w", Body=b"w")
    assert _err(ei) == (403, "AccessDenied")
    with pytest.raises(ClientError) as ei:
        ro.delete_bucket(Bucket=bucket)
    assert _err(ei) == (403, "AccessDenied")
