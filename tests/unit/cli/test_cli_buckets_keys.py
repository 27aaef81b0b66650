"""`garage bucket ...` and `garage key ...`: argument -> admin call mapping, and outputs."""

from __future__ import annotations

from typing import Any

import pytest

from pygarage.cli.testing import invoke

BID = "b7d1f2c3a4e5d6c7" + "0" * 48
BID2 = "aaaa1111bbbb2222" + "1" * 48
KID = "GK3515373e4c851ebaad366558"
KID2 = "GK0123456789abcdef01234567"
SECRET = "7d37d093435a41f2aab8f13c19ba067d9776c90215f56614adad6ece597dbb34"


def bucket(**kw: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": BID,
        "created": "2024-05-01T12:00:00.123Z",
        "globalAliases": ["nextcloud-bucket"],
        "websiteAccess": False,
        "websiteConfig": None,
        "keys": [
            {
                "accessKeyId": KID,
                "name": "nextcloud-app-key",
                "permissions": {"read": True, "write": True, "owner": False},
                "bucketLocalAliases": [],
            }
        ],
        "objects": 3,
        "bytes": int(1.2 * 1024 * 1024),
        "unfinishedUploads": 1,
        "unfinishedMultipartUploads": 1,
        "unfinishedMultipartUploadParts": 2,
        "unfinishedMultipartUploadBytes": 2048,
        "quotas": {"maxSize": None, "maxObjects": None},
    }
    info.update(kw)
    return info


def key(**kw: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "accessKeyId": KID,
        "name": "nextcloud-app-key",
        "secretAccessKey": SECRET,
        "created": "2024-05-01T12:00:00Z",
        "expiration": None,
        "expired": False,
        "permissions": {"createBucket": False},
        "buckets": [
            {
                "id": BID,
                "globalAliases": ["nextcloud-bucket"],
                "localAliases": ["mine"],
                "permissions": {"read": True, "write": True, "owner": True},
            }
        ],
    }
    info.update(kw)
    return info


STD = {"GetBucketInfo": bucket(), "GetKeyInfo": key()}


# ---- buckets ----------------------------------------------------------------------------


def test_bucket_list() -> None:
    buckets = [
        {"id": BID, "created": "2024-05-01T12:00:00Z", "globalAliases": ["b1"], "localAliases": []},
        {
            "id": BID2,
            "created": "2024-06-01T12:00:00Z",
            "globalAliases": [],
            "localAliases": [{"accessKeyId": KID, "alias": "loc"}],
        },
    ]
    res, fake = invoke(["bucket", "list"], {"ListBuckets": buckets})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split("  ")[0:1] == ["ID"] and "Global aliases" in lines[0]
    assert "Local aliases" in lines[0] and "Created" in lines[0]
    assert any(x.startswith("b7d1f2c3a4e5d6c7  2024-05-01  b1") for x in lines)
    assert any(x.startswith("aaaa1111bbbb2222  2024-06-01") and f"{KID}:loc" in x for x in lines)
    assert fake.calls == [("ListBuckets", None, None)]


def test_bucket_info_output() -> None:
    res, fake = invoke(["bucket", "info", "nextcloud-bucket"], STD)
    assert res.exit_code == 0, res.output
    assert fake.calls == [("GetBucketInfo", {"search": "nextcloud-bucket"}, None)]
    out = res.output
    assert f"Bucket: {BID}\n" in out
    assert "Created: 2024-05-01 12:00:00" in out
    assert f"Size: 1.2 MiB ({int(1.2 * 1024 * 1024)} bytes)" in out
    assert "Objects: 3" in out
    assert "Unfinished uploads: 1" in out
    assert "Unfinished multipart upload parts: 2" in out
    assert "Website access: false" in out
    assert "Global alias: nextcloud-bucket" in out
    assert "Max size: none" in out and "Max objects: none" in out
    keys = out.split("==== KEYS FOR THIS BUCKET ====\n")[1].splitlines()
    assert keys[0].startswith("Permissions  Access key")
    assert keys[0].endswith("Local aliases")
    assert keys[1].startswith(f"RW           {KID}  nextcloud-app-key")


def test_bucket_info_website_and_quotas() -> None:
    info = bucket(
        websiteAccess=True,
        websiteConfig={"indexDocument": "index.html", "errorDocument": "404.html"},
        quotas={"maxSize": 10**9, "maxObjects": 100},
        globalAliases=[],
    )
    res, _ = invoke(["bucket", "info", "b7d1"], {"GetBucketInfo": info})
    assert "Website access: true" in res.output
    assert "index document: index.html" in res.output
    assert "error document: 404.html" in res.output
    assert "Max size: 1.0 GB" in res.output and "Max objects: 100" in res.output
    assert "Global alias: (none)" in res.output


def test_bucket_create() -> None:
    res, fake = invoke(["bucket", "create", "nextcloud-bucket"], {"CreateBucket": bucket()})
    assert res.exit_code == 0, res.output
    assert fake.calls == [("CreateBucket", None, {"globalAlias": "nextcloud-bucket"})]
    assert "Bucket nextcloud-bucket was created." in res.output
    assert "==== BUCKET INFORMATION ====" in res.output


def test_bucket_delete_needs_yes() -> None:
    res, fake = invoke(["bucket", "delete", "nextcloud-bucket"], STD)
    assert res.exit_code == 1
    assert f"About to delete bucket {BID}" in res.stdout
    assert "Add --yes flag" in res.stderr
    assert "DeleteBucket" not in fake.endpoints()
    res, fake = invoke(["bucket", "delete", "--yes", "nextcloud-bucket"], STD)
    assert res.exit_code == 0, res.output
    assert fake.endpoints() == ["GetBucketInfo", "DeleteBucket"]
    assert fake.last("DeleteBucket") == ({"id": BID}, None)


def test_bucket_alias_and_unalias() -> None:
    res, fake = invoke(["bucket", "alias", "nextcloud-bucket", "nc"], STD)
    assert res.exit_code == 0, res.output
    assert fake.last("AddBucketAlias") == (None, {"bucketId": BID, "globalAlias": "nc"})
    res, fake = invoke(["bucket", "alias", "nextcloud-bucket", "nc", "--local", "nextcloud"], STD)
    assert fake.last("GetKeyInfo") == ({"search": "nextcloud", "showSecretKey": "false"}, None)
    assert fake.last("AddBucketAlias") == (
        None,
        {"bucketId": BID, "localAlias": "nc", "accessKeyId": KID},
    )

    res, fake = invoke(["bucket", "unalias", "nc"], STD)
    assert res.exit_code == 0, res.output
    assert fake.last("GetBucketInfo") == ({"globalAlias": "nc"}, None)
    assert fake.last("RemoveBucketAlias") == (None, {"bucketId": BID, "globalAlias": "nc"})
    res, fake = invoke(["bucket", "unalias", "mine", "--local", KID], STD)
    assert res.exit_code == 0, res.output
    assert fake.last("RemoveBucketAlias") == (
        None,
        {"bucketId": BID, "localAlias": "mine", "accessKeyId": KID},
    )
    res, fake = invoke(["bucket", "unalias", "other", "--local", KID], STD)
    assert res.exit_code == 1 and "No bucket called other" in res.stderr


@pytest.mark.parametrize("verb", ["allow", "deny"])
def test_bucket_allow_deny(verb: str) -> None:
    args = ["bucket", verb, "--read", "--write", "nextcloud-bucket", "--key", "nextcloud-app-key"]
    res, fake = invoke(args, STD | {"AllowBucketKey": bucket(), "DenyBucketKey": bucket()})
    assert res.exit_code == 0, res.output
    endpoint = "AllowBucketKey" if verb == "allow" else "DenyBucketKey"
    assert fake.last(endpoint) == (
        None,
        {
            "bucketId": BID,
            "accessKeyId": KID,
            "permissions": {"read": True, "write": True, "owner": False},
        },
    )
    assert "read true, write true, owner false" in res.output
    res, fake = invoke(["bucket", verb, "--owner", "nextcloud-bucket"], STD)
    assert res.exit_code == 2 and "--key" in res.stderr and fake.calls == []


def test_bucket_website() -> None:
    res, fake = invoke(["bucket", "website", "--allow", "nextcloud-bucket"], STD)
    assert res.exit_code == 0, res.output
    assert fake.last("UpdateBucket") == (
        {"id": BID},
        # No -i: the server picks its [s3_web] index (index.html unless configured).
        {"websiteAccess": {"enabled": True, "indexDocument": None, "errorDocument": None}},
    )
    args = ["bucket", "website", "--allow", "-i", "home.html", "-e", "err.html", "b"]
    res, fake = invoke(args, STD)
    assert fake.last("UpdateBucket")[1]["websiteAccess"] == {
        "enabled": True,
        "indexDocument": "home.html",
        "errorDocument": "err.html",
    }
    res, fake = invoke(["bucket", "website", "--deny", "b"], STD)
    assert fake.last("UpdateBucket")[1]["websiteAccess"]["enabled"] is False
    for flags in ([], ["--allow", "--deny"]):
        res, fake = invoke(["bucket", "website", *flags, "b"], STD)
        assert res.exit_code == 1 and "exactly one flag" in res.stderr
        assert "UpdateBucket" not in fake.endpoints()


def test_bucket_set_quotas() -> None:
    current = bucket(quotas={"maxSize": 5, "maxObjects": 7})
    res, fake = invoke(
        ["bucket", "set-quotas", "b", "--max-size", "10G"], {"GetBucketInfo": current}
    )
    assert res.exit_code == 0, res.output
    assert fake.last("UpdateBucket") == (
        {"id": BID},
        {"quotas": {"maxSize": 10**10, "maxObjects": 7}},
    )
    args = ["bucket", "set-quotas", "b", "--max-size", "none", "--max-objects", "1000"]
    res, fake = invoke(args, {"GetBucketInfo": current})
    assert fake.last("UpdateBucket")[1] == {"quotas": {"maxSize": None, "maxObjects": 1000}}
    res, fake = invoke(
        ["bucket", "set-quotas", "b", "--max-objects", "none"], {"GetBucketInfo": current}
    )
    assert fake.last("UpdateBucket")[1] == {"quotas": {"maxSize": 5, "maxObjects": None}}
    res, fake = invoke(["bucket", "set-quotas", "b"], {"GetBucketInfo": current})
    assert res.exit_code == 1 and "--max-size or --max-objects" in res.stderr
    res, fake = invoke(["bucket", "set-quotas", "b", "--max-size", "big"])
    assert res.exit_code == 2 and fake.calls == []


def test_bucket_cleanup_incomplete_uploads() -> None:
    args = ["bucket", "cleanup-incomplete-uploads", "--older-than", "2h", "b1"]
    res, fake = invoke(args, {**STD, "CleanupIncompleteUploads": {"uploadsDeleted": 3}})
    assert fake.last("CleanupIncompleteUploads") == (None, {"bucketId": BID, "olderThanSecs": 7200})
    assert res.exit_code == 0 and res.stdout == f"{BID[:16]}: 3 uploads deleted\n"
    res, _ = invoke(["bucket", "cleanup-incomplete-uploads", "b1"],
                    {**STD, "CleanupIncompleteUploads": {"uploadsDeleted": 0}})
    assert res.stdout == f"{BID[:16]}: no uploads deleted\n"


def test_bucket_inspect_object_calls_with_the_bucket_id() -> None:
    answer = {"bucketId": BID, "key": "path/to/obj", "versions": [
        {"uuid": "ab" * 32, "timestamp": "2026-01-01T00:00:00.000Z", "encrypted": False,
         "uploading": False, "aborted": False, "deleteMarker": True, "inline": False,
         "multipart": False, "size": None, "etag": None}]}
    res, fake = invoke(["bucket", "inspect-object", "b", "path/to/obj"],
                       {**STD, "InspectObject": answer})
    assert fake.last("InspectObject") == ({"bucketId": BID, "key": "path/to/obj"}, None)
    assert res.exit_code == 0 and "Delete marker:" in res.stdout and "ab" * 32 in res.stdout


# ---- keys -------------------------------------------------------------------------------


def test_key_list() -> None:
    keys = [
        {"id": KID, "name": "k1", "created": "2024-05-01T00:00:00Z", "expiration": None,
         "expired": False},
        {"id": KID2, "name": "k2", "created": "2024-06-01T00:00:00Z",
         "expiration": "2024-07-01T00:00:00Z", "expired": True},
    ]  # fmt: skip
    res, fake = invoke(["key", "list"], {"ListKeys": keys})
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].split() == ["ID", "Created", "Name", "Expiration"]
    assert lines[1].split() == [KID, "2024-05-01", "k1", "never"]
    assert lines[2].split() == [KID2, "2024-06-01", "k2", "2024-07-01", "00:00:00", "(expired)"]


def test_key_info_redacts_secret_unless_asked() -> None:
    res, fake = invoke(["key", "info", "nextcloud-app-key"], {"GetKeyInfo": key()})
    assert res.exit_code == 0, res.output
    assert fake.calls == [
        ("GetKeyInfo", {"search": "nextcloud-app-key", "showSecretKey": "false"}, None)
    ]
    out = res.output
    assert "Key name: nextcloud-app-key\n" in out
    assert f"Key ID: {KID}\n" in out
    assert "Secret key: (redacted)\n" in out and SECRET not in out
    assert "Can create buckets: false" in out
    rows = out.split("==== BUCKETS FOR THIS KEY ====\n")[1].splitlines()
    assert rows[0].split() == ["Permissions", "ID", "Global", "aliases", "Local", "aliases"]
    assert rows[1].split() == ["RWO", BID[:16], "nextcloud-bucket", "mine"]
    res, fake = invoke(["key", "info", "--show-secret", "GK35"], {"GetKeyInfo": key()})
    assert fake.last("GetKeyInfo") == ({"search": "GK35", "showSecretKey": "true"}, None)
    assert f"Secret key: {SECRET}\n" in res.output


def test_key_create_and_new() -> None:
    res, fake = invoke(["key", "new", "--name", "nextcloud-app-key"], {"CreateKey": key()})
    assert res.exit_code == 0, res.output
    assert fake.calls == [("CreateKey", None, {"name": "nextcloud-app-key"})]
    assert f"Key ID: {KID}" in res.output and f"Secret key: {SECRET}" in res.output
    res, fake = invoke(["key", "create", "my-key"], {"CreateKey": key()})
    assert fake.calls == [("CreateKey", None, {"name": "my-key"})]
    res, fake = invoke(["key", "create"], {"CreateKey": key()})
    assert fake.calls == [("CreateKey", None, {"name": "Unnamed key"})]
    res, fake = invoke(["key", "new"], {"CreateKey": key()})
    assert fake.calls == [("CreateKey", None, {"name": "Unnamed key"})]


def test_key_rename_allow_deny() -> None:
    responses = {"GetKeyInfo": key(), "UpdateKey": key(name="new")}
    res, fake = invoke(["key", "rename", "GK35", "new"], responses)
    assert res.exit_code == 0, res.output
    assert fake.last("UpdateKey") == ({"id": KID}, {"name": "new"})
    assert "Key name: new" in res.output
    res, fake = invoke(["key", "allow", "--create-bucket", "GK35"], responses)
    assert fake.last("UpdateKey") == ({"id": KID}, {"allow": {"createBucket": True}})
    res, fake = invoke(["key", "deny", "--create-bucket", "GK35"], responses)
    assert fake.last("UpdateKey") == ({"id": KID}, {"deny": {"createBucket": True}})
    res, fake = invoke(["key", "allow", "GK35"], responses)
    assert res.exit_code == 1 and "--create-bucket" in res.stderr and fake.calls == []


def test_key_delete_needs_yes() -> None:
    res, fake = invoke(["key", "delete", "GK35"], {"GetKeyInfo": key()})
    assert res.exit_code == 1 and "Add --yes flag" in res.stderr
    assert "DeleteKey" not in fake.endpoints()
    res, fake = invoke(["key", "delete", "--yes", "GK35"], {"GetKeyInfo": key()})
    assert res.exit_code == 0, res.output
    assert fake.last("DeleteKey") == ({"id": KID}, None)


def test_key_import() -> None:
    args = ["key", "import", KID, SECRET, "-n", "old-key", "--yes"]
    res, fake = invoke(args, {"ImportKey": key(name="old-key")})
    assert res.exit_code == 0, res.output
    assert fake.calls == [
        ("ImportKey", None, {"accessKeyId": KID, "secretAccessKey": SECRET, "name": "old-key"})
    ]
    res, fake = invoke(["key", "import", KID, SECRET], {"ImportKey": key()})
    assert res.exit_code == 1 and "--yes" in res.stderr and fake.calls == []
    res, fake = invoke(["key", "import", "GKnothex", SECRET, "--yes"])
    assert res.exit_code == 1 and "'GK' followed by 24 hexadecimal" in res.stderr
    res, fake = invoke(["key", "import", KID, "abc", "--yes"])
    assert res.exit_code == 1 and "64 hexadecimal" in res.stderr and fake.calls == []
    # A final newline (which "$" lets through) is refused before anything is sent.
    res, fake = invoke(["key", "import", KID + "\n", SECRET, "--yes"])
    assert res.exit_code == 1 and "'GK' followed by 24 hexadecimal" in res.stderr
    assert fake.calls == []
    res, fake = invoke(["key", "import", KID, SECRET + "\n", "--yes"])
    assert res.exit_code == 1 and "64 hexadecimal" in res.stderr and fake.calls == []
