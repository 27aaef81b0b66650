"""Admin HTTP API: bearer token, /health, /metrics, and v2 calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from pygarage.testing.node import GarageNode


def _get(node: GarageNode, path: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{node.admin_port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_health_and_metrics(node: GarageNode, s3: Any, bucket: str) -> None:
    status, body = _get(node, "/health")
    assert status == 200 and b"fully operational" in body
    s3.put_object(Bucket=bucket, Key="m", Body=b"x")
    status, body = _get(node, "/metrics")
    assert status == 200 and b"api_s3_request_counter" in body


def test_token_required(node: GarageNode) -> None:
    assert _get(node, "/v2/ListBuckets")[0] == 403
    assert _get(node, "/v2/ListBuckets", "wrong")[0] == 403
    status, body = _get(node, "/v2/ListBuckets", node.admin_token)
    assert status == 200 and isinstance(json.loads(body), list)


def test_v2_calls(node: GarageNode) -> None:
    k = node.admin("CreateKey", body={"name": "adm"})
    assert k["accessKeyId"].startswith("GK") and len(k["secretAccessKey"]) == 64
    info = node.admin("GetKeyInfo", query={"search": "adm"})
    assert info["secretAccessKey"] is None and info["name"] == "adm"
    b = node.admin("CreateBucket", body={"globalAlias": "adm-bucket"})
    b = node.admin("AllowBucketKey", body={"bucketId": b["id"],
                                           "accessKeyId": k["accessKeyId"],
                                           "permissions": {"read": True}})
    assert b["keys"][0]["permissions"] == {"read": True, "write": False, "owner": False}
    with pytest.raises(urllib.error.HTTPError) as e:
        node.admin("CreateBucket", body={"globalAlias": "Not_Valid"})
    assert e.value.code == 400
    layout = node.admin("GetClusterLayout")
    assert layout["version"] == 1 and len(layout["roles"]) == 1
    assert node.admin("GetClusterHealth")["status"] == "healthy"
