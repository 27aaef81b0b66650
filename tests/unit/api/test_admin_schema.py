"""Admin API body shapes (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from pygarage.api.admin.errors import AdminError
from pygarage.api.admin.schema import check_body
from pygarage.api.common.domains import host_to_bucket


@pytest.mark.parametrize(("ep", "body"), [
    ("CreateKey", None), ("CreateKey", {}), ("CreateKey", {"name": "k",
                                                           "allow": {"createBucket": True}}),
    ("UpdateClusterLayout", {"roles": [{"id": "a" * 64, "zone": "dc1", "capacity": 10,
                                        "tags": ["x"]}, {"id": "b" * 64, "remove": True}],
                             "parameters": {"zoneRedundancy": "maximum"}}),
    ("UpdateClusterLayout", {"parameters": {"zoneRedundancy": {"atLeast": 2}}}),
    ("UpdateBucket", {"quotas": {"maxSize": None, "maxObjects": 5}}),
    ("ListBuckets", None), ("GetClusterHealth", {}),
    ("CreateKey", {"name": "k", "unknownField": [1, 2]}),  # unknown fields ignored
    ("LaunchRepairOperation", {"repairType": "blockRc"}),
    ("LaunchRepairOperation", {"repairType": {"scrub": "pause"}}),
    ("SetWorkerVariable", {"variable": "scrub-tranquility", "value": "3"}),
    ("GetWorkerVariable", {}), ("GetWorkerInfo", {"id": 3}),
])
def test_good_bodies_pass(ep: str, body: Any) -> None:
    check_body(ep, body)


@pytest.mark.parametrize(("ep", "body", "where"), [
    ("CreateKey", {"allow": "bad"}, "body.allow"),
    ("CreateKey", "text", "body"),
    ("ListBuckets", [1], "body"),
    ("UpdateClusterLayout", {"roles": "x"}, "body.roles"),
    ("UpdateClusterLayout", {"roles": [{"zone": "z"}]}, "body.roles[0].id"),
    ("UpdateClusterLayout", {"parameters": {"zoneRedundancy": {}}},
     "body.parameters.zoneRedundancy"),
    ("UpdateClusterLayout", {"roles": [{"id": "a", "capacity": True}]},
     "body.roles[0].capacity"),
    ("ApplyClusterLayout", {}, "body.version"),
    ("LaunchRepairOperation", {"repairType": 5}, "body.repairType"),
    ("LaunchRepairOperation", {}, "body.repairType"),
    ("SetWorkerVariable", {"variable": "x", "value": 3}, "body.value"),
    ("GetWorkerInfo", {"id": "3"}, "body.id"),
    ("AllowBucketKey", {"bucketId": "00", "accessKeyId": "GK", "permissions": {"read": 1}},
     "body.permissions.read"),
])
def test_bad_bodies_are_400_naming_the_field(ep: str, body: Any, where: str) -> None:
    with pytest.raises(AdminError) as e:
        check_body(ep, body)
    assert e.value.status == 400 and e.value.message.startswith(where)


@pytest.mark.parametrize(("host", "root", "bucket"), [
    ("photos.s3.example.org", ".s3.example.org", "photos"),
    ("photos.s3.example.org", "s3.example.org", "photos"),
    ("a.b.web.x", ".web.x", "a.b"),
    ("PHOTOS.S3.Example.org", ".s3.example.org", "photos"),
    ("s3.example.org", ".s3.example.org", None),
    ("photos.example.org", ".s3.example.org", None),
    ("photoss3.example.org", ".s3.example.org", None),
    ("photos", ".s3.example.org", None),
])
def test_host_to_bucket(host: str, root: str, bucket: str | None) -> None:
    assert host_to_bucket(host, root) == bucket


def test_list_bodied_endpoints() -> None:
    # Garage's PurgeBlocks and ConnectClusterNodes take a JSON list, as the CLI sends.
    check_body("PurgeBlocks", ["ab" * 32])
    check_body("ConnectClusterNodes", ["id@127.0.0.1:3901"])
    for bad in ({"x": 1}, [5], "ab"):
        with pytest.raises(AdminError):
            check_body("PurgeBlocks", bad)
