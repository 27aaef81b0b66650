"""ListObjects v1/v2 and ListObjectVersions: prefix, delimiters (multi-character too),
markers, continuation tokens, start-after, max-keys, encoding-type=url, and a 10,000-key
bucket paged through completely."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient, find_all, find_text

from pygarage.testing.node import GarageNode

KEYS = ["a", "a/b", "a/b/c", "a/c", "a--x", "a--y--z", "b", "b/", "b//c", "c-1", "c-2",
        "c/d", "d\u00e9j\u00e0/vu", "z"]


@pytest.fixture
def filled(s3: Any, bucket: str) -> str:
    for k in KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def _v2_all(s3: Any, bucket: str, **kw: Any) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    token: dict[str, str] = {}
    while True:
        r = s3.list_objects_v2(Bucket=bucket, **kw, **token)
        pages += 1
        keys += [o["Key"] for o in r.get("Contents", [])]
        prefixes += [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        assert r["KeyCount"] == len(r.get("Contents", [])) + len(r.get("CommonPrefixes", []))
        if not r["IsTruncated"]:
            assert "NextContinuationToken" not in r
            return keys, prefixes, pages
        token = {"ContinuationToken": r["NextContinuationToken"]}


def _v1_all(s3: Any, bucket: str, **kw: Any) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    marker: dict[str, str] = {}
    while True:
        r = s3.list_objects(Bucket=bucket, **kw, **marker)
        pages += 1
        page_keys = [o["Key"] for o in r.get("Contents", [])]
        page_prefixes = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        keys += page_keys
        prefixes += page_prefixes
        if not r["IsTruncated"]:
            return keys, prefixes, pages
        nxt = r.get("NextMarker") or (page_keys[-1] if page_keys else None)
        if "Delimiter" in kw:
            assert "NextMarker" in r
        assert nxt
        marker = {"Marker": nxt}


def _sorted(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode())


def test_list_all(s3: Any, filled: str) -> None:
    r = s3.list_objects_v2(Bucket=filled)
    assert [o["Key"] for o in r["Contents"]] == _sorted(KEYS)
    assert r["IsTruncated"] is False
    assert r["KeyCount"] == len(KEYS)
    first = r["Contents"][0]
    assert first["Size"] == 1 and first["ETag"].startswith('"')
    assert first["StorageClass"] == "STANDARD"
    r1 = s3.list_objects(Bucket=filled)
    assert [o["Key"] for o in r1["Contents"]] == _sorted(KEYS)


def test_prefix(s3: Any, filled: str) -> None:
    for prefix in ("a", "a/", "c-", "d\u00e9", "nothing", "b/"):
        want = [k for k in _sorted(KEYS) if k.startswith(prefix)]
        assert _v2_all(s3, filled, Prefix=prefix)[0] == want, prefix
        assert _v1_all(s3, filled, Prefix=prefix)[0] == want, prefix


@pytest.mark.parametrize("delimiter", ["/", "--", "-", "b", "//"])
@pytest.mark.parametrize("prefix", ["", "a", "a/", "b"])
@pytest.mark.parametrize("max_keys", [1, 2, 1000])
def test_delimiter_paging(s3: Any, filled: str, delimiter: str, prefix: str,
                          max_keys: int) -> None:
    want_keys, want_prefixes = [], []
    for k in _sorted(KEYS):
        if not k.startswith(prefix):
            continue
        i = k.find(delimiter, len(prefix))
        if i < 0:
            want_keys.append(k)
        elif k[:i + len(delimiter)] not in want_prefixes:
            want_prefixes.append(k[:i + len(delimiter)])
    for lister in (_v2_all, _v1_all):
        keys, prefixes, pages = lister(s3, filled, Prefix=prefix, Delimiter=delimiter,
                                       MaxKeys=max_keys)
        assert keys == want_keys, (lister.__name__, delimiter, prefix)
        assert prefixes == want_prefixes, (lister.__name__, delimiter, prefix)
        total = len(want_keys) + len(want_prefixes)
        assert pages == max(1, -(-total // max_keys)), lister.__name__


def test_start_after_and_marker(s3: Any, filled: str) -> None:
    ordered = _sorted(KEYS)
    for start in ("a/b", "a/bb", "c", "", "zz", "a--"):
        want = [k for k in ordered if k.encode() > start.encode()]
        r = s3.list_objects_v2(Bucket=filled, StartAfter=start)
        assert [o["Key"] for o in r.get("Contents", [])] == want, start
        if start:
            assert r["StartAfter"] == start
        r = s3.list_objects(Bucket=filled, Marker=start)
        assert [o["Key"] for o in r.get("Contents", [])] == want, start
    # The continuation token wins over start-after.
    r = s3.list_objects_v2(Bucket=filled, MaxKeys=3)
    r2 = s3.list_objects_v2(Bucket=filled, MaxKeys=3, StartAfter="c",
                            ContinuationToken=r["NextContinuationToken"])
    assert [o["Key"] for o in r2["Contents"]] == ordered[3:6]


def test_start_after_inside_common_prefix(s3: Any, filled: str) -> None:
    r = s3.list_objects_v2(Bucket=filled, Delimiter="/", StartAfter="a/b")
    assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["b/", "c/", "d\u00e9j\u00e0/"]


def test_max_keys_zero_and_invalid(s3: Any, raw: RawClient, filled: str) -> None:
    r = s3.list_objects_v2(Bucket=filled, MaxKeys=0)
    assert "Contents" not in r
    r = raw.request("GET", f"/{filled}", "list-type=2&max-keys=-1")
    assert r.status == 400
    r = raw.request("GET", f"/{filled}", "list-type=2&max-keys=abc")
    assert r.status == 400
    r = raw.request("GET", f"/{filled}", "list-type=2&continuation-token=bm90LWEtdG9rZW4")
    assert r.status == 400
    assert r.code == "InvalidArgument"


def test_encoding_type_url_raw(raw: RawClient, s3: Any, bucket: str) -> None:
    key = "sp ace/\u00e9+&<>\x01ctl"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    for query in ("list-type=2&encoding-type=url", "encoding-type=url"):
        r = raw.request("GET", f"/{bucket}", query)
        assert r.status == 200
        assert find_text(r.xml(), "EncodingType") == "url"
        keys = [find_text(c, "Key") for c in find_all(r.xml(), "Contents")]
        assert keys == ["plain", "sp%20ace/%C3%A9%2B%26%3C%3E%01ctl"], query
        assert unquote(keys[1] or "") == key
    r = raw.request("GET", f"/{bucket}", "list-type=2&encoding-type=url&delimiter=%2F")
    assert [find_text(p, "Prefix") for p in find_all(r.xml(), "CommonPrefixes")] == \
        ["sp%20ace/"]
    r = raw.request("GET", f"/{bucket}", "list-type=2&encoding-type=bogus")
    assert r.status == 400


def test_boto3_default_url_decoding(s3: Any, bucket: str) -> None:
    """boto3 asks for encoding-type=url by itself and decodes keys transparently."""
    keys = ["with space", "per%cent", "plus+", "\u00e9t\u00e9/\u00e0", "amp&lt;"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    got = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert got == _sorted(keys)
    got = [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]]
    assert got == _sorted(keys)


def test_deleted_and_uploading_not_listed(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="gone")
    s3.create_multipart_upload(Bucket=bucket, Key="in-progress")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["kept"]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == ["kept"]


def test_list_object_versions(s3: Any, filled: str) -> None:
    r = s3.list_object_versions(Bucket=filled)
    versions = r["Versions"]
    assert [v["Key"] for v in versions] == _sorted(KEYS)
    assert all(v["VersionId"] == "null" for v in versions)
    assert all(v["IsLatest"] for v in versions)
    assert not r.get("DeleteMarkers")
    r = s3.list_object_versions(Bucket=filled, Prefix="a", Delimiter="/")
    assert [v["Key"] for v in r["Versions"]] == ["a", "a--x", "a--y--z"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/"]
    r = s3.list_object_versions(Bucket=filled, MaxKeys=4)
    assert r["IsTruncated"] is True
    assert len(r["Versions"]) == 4
    r2 = s3.list_object_versions(Bucket=filled, KeyMarker=r["NextKeyMarker"], MaxKeys=1000)
    assert [v["Key"] for v in r["Versions"] + r2["Versions"]] == _sorted(KEYS)


def test_list_unknown_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as ei:
        s3.list_objects_v2(Bucket="no-such-bucket-" + secrets.token_hex(4))
    assert ei.value.response["Error"]["Code"] == "NoSuchBucket"


def test_list_type_must_be_2(raw: RawClient, bucket: str) -> None:
    r = raw.request("GET", f"/{bucket}", "list-type=3")
    assert r.status == 400


# ---------------------------------------------------------------- 10,000+ keys

N_MANY = 10_000
N_TOP = 37


@pytest.fixture(scope="module")
def many(node: GarageNode, creds: tuple[str, str]) -> tuple[str, list[str]]:
    name = "many-" + secrets.token_hex(5)
    node.create_bucket(name, creds[0])
    client = node.s3(*creds, max_pool_connections=16, parameter_validation=False,
                     request_checksum_calculation="when_required")
    keys = [f"d{i % 7}/k{i:05d}" for i in range(N_MANY)] + [f"top{i:03d}" for i in range(N_TOP)]

    def put(k: str) -> None:
        client.put_object(Bucket=name, Key=k, Body=b"")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))
    return name, _sorted(keys)


def test_many_v2(s3: Any, many: tuple[str, list[str]]) -> None:
    bucket, keys = many
    got, prefixes, pages = _v2_all(s3, bucket)
    assert len(got) == len(set(got)) == len(keys)
    assert got == keys
    assert pages == -(-len(keys) // 1000)
    assert prefixes == []


def test_many_v1(s3: Any, many: tuple[str, list[str]]) -> None:
    bucket, keys = many
    got, _, pages = _v1_all(s3, bucket, MaxKeys=777)
    assert len(got) == len(set(got))
    assert got == keys
    assert pages == -(-len(keys) // 777)


def test_many_delimiter(s3: Any, many: tuple[str, list[str]]) -> None:
    bucket, keys = many
    for lister in (_v2_all, _v1_all):
        got, prefixes, _ = lister(s3, bucket, Delimiter="/", MaxKeys=5)
        assert prefixes == [f"d{i}/" for i in range(7)]
        assert got == [k for k in keys if k.startswith("top")]
    got, _, pages = _v2_all(s3, bucket, Prefix="d3/", MaxKeys=333)
    assert got == [k for k in keys if k.startswith("d3/")]
    assert pages == -(-len(got) // 333)


def test_many_max_keys_capped(s3: Any, many: tuple[str, list[str]]) -> None:
    bucket, keys = many
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=5000)
    assert len(r["Contents"]) == 1000
    assert r["IsTruncated"] is True
    assert r["MaxKeys"] == 1000
    r = s3.list_objects(Bucket=bucket, MaxKeys=100_000)
    assert len(r["Contents"]) == 1000
    assert r["IsTruncated"] is True
    r = s3.list_objects_v2(Bucket=bucket)
    assert len(r["Contents"]) == 1000 and r["MaxKeys"] == 1000
