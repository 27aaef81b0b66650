"""Node ids and block hashes sent to a real server's admin API in hostile forms: a final
newline (which a regex ending in "$" lets through), a blank, another script's digits, the
empty string, 5,000 digits. Each is refused with a message naming what is wrong (a 400, or
this node's error in a multi-node answer), nothing is staged or changed, and the server
logs no traceback. (A final newline used to be staged as a layout role, and a block hash
with one answered 500.) Also bodies that are not JSON as the RFC has it (a lone surrogate
escape created a key and answered 500) and a capacity too large to store (staged, then
every save of the layout failed)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pygarage.testing.node import GarageNode

HASH = "ab" * 32
BAD_HEX = [HASH[:-1] + "\n", HASH[:-1] + " ", HASH[:-1] + "\u0663", "", "a" * 5000,
           HASH + "\n"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarageNode]:
    n = GarageNode(Path(tmp_path_factory.mktemp("hostile-ids")) / "n")
    n.start()
    try:
        yield n
    finally:
        n.stop()
    text = n.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[text.find("Traceback") - 500:][:3000]


def call(node: GarageNode, endpoint: str, query: str = "", body: Any = None
         ) -> tuple[int, Any]:
    """Raw HTTP: the query goes as given (already percent-encoded), the body as JSON."""
    conn = http.client.HTTPConnection(node.host, node.admin_port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request("POST" if data is not None else "GET",
                     f"/v2/{endpoint}" + (f"?{query}" if query else ""), body=data,
                     headers={"Authorization": f"Bearer {node.admin_token}",
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def refused(answer: tuple[int, Any]) -> str:
    """The error of a `?node=self` call (Garage's multi-node answer: 200, with this node's
    error in `error` and nothing in `success`)."""
    status, body = answer
    assert status == 200 and body["success"] == {} and len(body["error"]) == 1, answer
    (message,) = body["error"].values()
    return str(message)


@pytest.mark.parametrize("bad", BAD_HEX)
def test_block_hashes(node: GarageNode, bad: str) -> None:
    assert "hex" in refused(call(node, "GetBlockInfo", "node=self", {"blockHash": bad}))
    assert "64 hex digits" in refused(call(node, "PurgeBlocks", "node=self", [bad]))
    assert "64 hex digits" in refused(call(node, "RetryBlockResync", "node=self",
                                           {"blockHashes": [bad]}))


@pytest.mark.parametrize("bad", BAD_HEX)
def test_node_id_of_a_role_change(node: GarageNode, bad: str) -> None:
    before = call(node, "GetClusterLayout")[1]
    status, body = call(node, "UpdateClusterLayout", body={
        "roles": [{"id": bad, "zone": "z1", "capacity": 10**9, "tags": []}]})
    assert status == 400 and "node identifier" in body["message"], (status, body)
    assert call(node, "GetClusterLayout")[1] == before  # nothing staged


@pytest.mark.parametrize("bad", ["%0A", "%20", "%D9%A3", "%0D%0A"])
def test_node_id_of_a_multi_node_call(node: GarageNode, bad: str) -> None:
    me = call(node, "GetNodeInfo", "node=self")[1]["success"]
    (node_id,) = me
    status, body = call(node, "GetNodeInfo", f"node={node_id[:-1]}{bad}")
    assert status == 400 and "node must be" in body["message"], (status, body)
    status, body = call(node, "GetNodeInfo", f"node={node_id}{bad}")
    assert status == 400 and "node must be" in body["message"], (status, body)
    assert call(node, "GetNodeInfo", f"node={node_id}")[0] == 200


def test_node_id_of_a_peer_to_connect(node: GarageNode) -> None:
    status, body = call(node, "ConnectClusterNodes", body=[
        f"{HASH[:-1]}\n@127.0.0.1:1", f"{HASH[:-1]} @127.0.0.1:1"])
    assert status == 200, body
    assert [r["success"] for r in body] == [False, False]
    assert all("invalid node address" in r["error"] for r in body), body


@pytest.mark.parametrize("raw", [
    b'{"name": "\\ud800"}',  # a lone surrogate escape: no store or UTF-8 output takes it
    b'{"name": "ok", "\\udcff": 1}',
    b'{"name": NaN}', b'{"name": "ok", "allow": {"createBucket": Infinity}}',
    b'{"name": "\xff"}',  # not UTF-8
    b"[" * 100_000 + b"]" * 100_000,
])
def test_bodies_that_are_not_json_as_the_rfc_has_it(node: GarageNode, raw: bytes) -> None:
    keys = call(node, "ListKeys")[1]
    conn = http.client.HTTPConnection(node.host, node.admin_port, timeout=30)
    try:
        conn.request("POST", "/v2/CreateKey", body=raw,
                     headers={"Authorization": f"Bearer {node.admin_token}"})
        r = conn.getresponse()
        answer = json.loads(r.read())
    finally:
        conn.close()
    assert r.status == 400 and answer["message"] == "body is not valid JSON", answer
    assert call(node, "ListKeys")[1] == keys  # no key created (it was, then a 500)


@pytest.mark.parametrize("capacity", [2**64, 10**300])
def test_a_capacity_too_large_to_store_is_refused(node: GarageNode, capacity: int) -> None:
    """It was staged in memory, then the save failed (500), and every later save too."""
    me = next(iter(call(node, "GetNodeInfo", "node=self")[1]["success"]))
    before = call(node, "GetClusterLayout")[1]
    status, body = call(node, "UpdateClusterLayout", body={
        "roles": [{"id": me, "zone": "z1", "capacity": capacity, "tags": []}]})
    assert status == 400 and "at most 18446744073709551615" in body["message"], body
    assert call(node, "GetClusterLayout")[1] == before
    largest = {"id": me, "zone": "z1", "capacity": 2**64 - 1, "tags": []}
    status, body = call(node, "UpdateClusterLayout", body={"roles": [largest]})
    assert status == 200 and body["stagedRoleChanges"] == [largest], body
    assert call(node, "RevertClusterLayout", body={})[0] == 200
