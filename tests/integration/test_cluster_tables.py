"""Replicated tables on real processes: 3 storage nodes in 3 zones with RF 3, plus a gateway
(a role without capacity). Objects are small (stored inline in the object table), so these
tests exercise the tables alone.

- a key and a bucket made through node 1 serve S3 on every node, the gateway included;
- with one node killed (-9), PUT, GET, LIST and DELETE go on through the others;
- a read at quorum repairs a replica that missed a write (checked in its own database);
- an owner that knows the bucket deleted refuses a write: the writer answers NoSuchBucket;
- buckets are created and deleted through any node (names checked in the full copies,
  emptiness read at quorum);
- through a layout change (the gateway gets capacity), objects old and new stay readable.
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from botocore.exceptions import ClientError

from pygarage.model.s3.object_table import ObjectSchema
from pygarage.table.data import tree_key
from pygarage.testing.cluster import Cluster, node_id
from pygarage.testing.node import GarageNode

RF = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("tables"), replication_factor=RF)
    try:
        c.start_zoned(3, 1)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def creds(cluster: Cluster) -> tuple[str, str]:
    n1 = cluster.nodes[0]
    key_id, secret = n1.create_key("tables")
    n1.create_bucket("shared", key_id)
    return key_id, secret


def revive(cluster: Cluster, node: GarageNode) -> None:
    node.start(single_node=False)
    nid = node_id(node)
    cluster.wait_for(lambda: all(nid in Cluster.up_ids(n) for n in cluster.nodes
                                 if n.proc is not None), timeout=20)


def bucket_id(node: GarageNode, name: str) -> bytes:
    return bytes.fromhex(node.admin("GetBucketInfo", {"globalAlias": name})["id"])


def peek_object(node: GarageNode, bucket: bytes, key: str) -> bytes | None:
    """The object entry in a node's own database, read as a second LMDB reader (LMDB is
    multi-process: on a running node this neither blocks nor disturbs it)."""
    env = lmdb.open(str(node.root / "meta" / "db.lmdb"), readonly=True, max_dbs=128)
    try:
        with env.begin() as txn:
            raw = txn.get(tree_key(bucket, key.encode()), db=env.open_db(b"object:table",
                                                                         txn=txn, create=False))
        return None if raw is None else bytes(raw)
    finally:
        env.close()


def test_written_through_one_node_served_by_all(cluster: Cluster,
                                                creds: tuple[str, str]) -> None:
    n1, n2, n3, gw = cluster.nodes
    s1 = n1.s3(*creds)
    for i in range(5):
        s1.put_object(Bucket="shared", Key=f"k{i}", Body=f"value {i}".encode())
    for node in (n2, n3, gw):
        s = node.s3(*creds)
        assert [b["Name"] for b in s.list_buckets()["Buckets"]] == ["shared"]
        assert s.get_object(Bucket="shared", Key="k3")["Body"].read() == b"value 3"
        keys = [o["Key"] for o in s.list_objects_v2(Bucket="shared")["Contents"]]
        assert keys == [f"k{i}" for i in range(5)]
    # The gateway stores no object but writes them for its clients.
    gw.s3(*creds).put_object(Bucket="shared", Key="from-gw", Body=b"gw")
    assert n3.s3(*creds).get_object(Bucket="shared", Key="from-gw")["Body"].read() == b"gw"
    # Buckets made through another node are seen by all (full-copy tables).
    n2.s3(*creds).create_bucket(Bucket="second")
    assert "second" in [b["Name"] for b in gw.s3(*creds).list_buckets()["Buckets"]]


def test_one_node_killed_requests_continue(cluster: Cluster, creds: tuple[str, str]) -> None:
    n1, n2, n3, gw = cluster.nodes
    n3.kill()
    try:
        for node in (n1, n2, gw):
            s = node.s3(*creds)
            name = f"down-{node.root.name}"
            s.put_object(Bucket="shared", Key=name, Body=b"x" * 100)
            assert s.get_object(Bucket="shared", Key=name)["Body"].read() == b"x" * 100
            listed = [o["Key"] for o in s.list_objects_v2(Bucket="shared")["Contents"]]
            assert name in listed and "k0" in listed
            s.delete_object(Bucket="shared", Key=name)
            with pytest.raises(ClientError) as e:
                s.get_object(Bucket="shared", Key=name)
            assert e.value.response["Error"]["Code"] == "NoSuchKey"
    finally:
        revive(cluster, n3)


def test_read_repairs_a_stale_replica(cluster: Cluster, creds: tuple[str, str]) -> None:
    n1, n2, n3, _ = cluster.nodes
    bid = bucket_id(n1, "shared")
    n3.kill()
    n1.s3(*creds).put_object(Bucket="shared", Key="missed", Body=b"while node 3 was down")
    assert peek_object(n3, bid, "missed") is None
    revive(cluster, n3)
    n1.kill()  # reads through node 2 now ask nodes 2 and 3
    try:
        body = n2.s3(*creds).get_object(Bucket="shared", Key="missed")["Body"].read()
        assert body == b"while node 3 was down"
        # The repair is written in the background, after the answer: wait for it.
        cluster.wait_for(lambda: peek_object(n3, bid, "missed") is not None)
        raw = peek_object(n3, bid, "missed")
        assert raw is not None
        obj = ObjectSchema(lambda *a: None, lambda *a: None).decode(raw)
        assert obj.current() is not None
    finally:
        revive(cluster, n1) if n1.proc is None else None
        revive(cluster, n3) if n3.proc is None else None


def test_quorum_not_reached_is_503_for_admin_and_an_error_for_the_cli(
        cluster: Cluster) -> None:
    """Full-copy writes need n-1 of the 4 nodes: with two down, CreateKey is refused with
    503 (retry later), not a 500 with a traceback; the CLI says why."""
    n1, n2, n3 = cluster.nodes[:3]
    n2.kill()
    n3.kill()
    try:
        with pytest.raises(urllib.error.HTTPError) as exc:
            n1.admin("CreateKey", body={"name": "no-quorum"})
        assert exc.value.code == 503
        assert json.loads(exc.value.read())["code"] == "ServiceUnavailable"
        out = n1.cli("key", "create", "no-quorum-cli", check=False)
        assert out.returncode != 0 and "quorum" in (out.stdout + out.stderr).lower()
    finally:
        revive(cluster, n2)
        revive(cluster, n3)
    assert "Traceback" not in n1.log_path.read_text()


def test_owner_knowing_the_bucket_deleted_refuses(cluster: Cluster,
                                                  creds: tuple[str, str]) -> None:
    n1, _, n3, _ = cluster.nodes
    n1.s3(*creds).create_bucket(Bucket="doomed")
    cluster.wait_for(lambda: "doomed" in [
        b["Name"] for b in n3.s3(*creds).list_buckets()["Buckets"]])
    n3.kill()  # node 3 misses the deletion
    n1.s3(*creds).delete_bucket(Bucket="doomed")
    revive(cluster, n3)
    with pytest.raises(ClientError) as e:
        n3.s3(*creds).put_object(Bucket="doomed", Key="late", Body=b"too late")
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        n1.s3(*creds).head_object(Bucket="doomed", Key="late")
    assert e.value.response["Error"]["Code"] in ("NoSuchBucket", "404")


def test_bucket_create_and_delete_across_nodes(cluster: Cluster,
                                              creds: tuple[str, str]) -> None:
    n1, n2, n3, gw = (node.s3(*creds) for node in cluster.nodes)
    n2.create_bucket(Bucket="life")
    with pytest.raises(ClientError) as e:
        n3.create_bucket(Bucket="life")  # the name is taken in every node's full copy
    assert e.value.response["Error"]["Code"] in ("BucketAlreadyExists",
                                                 "BucketAlreadyOwnedByYou")
    cluster.wait_for(lambda: "life" in [b["Name"] for b in n1.list_buckets()["Buckets"]])
    n1.put_object(Bucket="life", Key="obj", Body=b"data")
    with pytest.raises(ClientError) as e:
        n3.delete_bucket(Bucket="life")  # emptiness is read at quorum
    assert e.value.response["Error"]["Code"] == "BucketNotEmpty"
    upload = n1.create_multipart_upload(Bucket="life", Key="mpu")["UploadId"]
    n1.delete_object(Bucket="life", Key="obj")
    gw.delete_bucket(Bucket="life")  # the unfinished upload is aborted, as on one node
    # Bucket entries are full copies written at quorum n-1 and read locally (as in Garage):
    # the last node may get them a moment after the answer.
    for s in (n1, n2, n3):
        cluster.wait_for(lambda s=s: "life" not in [b["Name"]
                                                    for b in s.list_buckets()["Buckets"]])
        with pytest.raises(ClientError) as e:
            s.list_parts(Bucket="life", Key="mpu", UploadId=upload)
        assert e.value.response["Error"]["Code"] == "NoSuchBucket"
    n3.create_bucket(Bucket="life")  # the name is free again
    cluster.wait_for(lambda: "life" in [b["Name"] for b in n1.list_buckets()["Buckets"]])
    assert n1.list_objects_v2(Bucket="life")["KeyCount"] == 0


def test_layout_change_keeps_objects_readable(cluster: Cluster,
                                              creds: tuple[str, str]) -> None:
    """The gateway becomes a storage node: partitions move to it in layout version 2, and
    it does not have their data yet. Writes go to the owners of both versions, and every
    object stays readable and listed through every node. (Which version reads use is
    System's read_version; with RF 3 any read quorum includes an old owner here.)"""
    n1, n2, n3, gw = cluster.nodes
    before = {f"k{i}": f"value {i}".encode() for i in range(5)}
    n1.admin("UpdateClusterLayout", body={"roles": [
        {"id": node_id(gw), "zone": "dc4", "capacity": 10**9, "tags": []}]})
    n1.admin("ApplyClusterLayout", body={"version": 2})
    cluster.wait_for(lambda: all(n.admin("GetClusterLayout")["version"] == 2
                                 for n in cluster.nodes), timeout=20)
    for node in (n1, n2, n3, gw):
        s = node.s3(*creds)
        name = f"v2-{node.root.name}"
        s.put_object(Bucket="shared", Key=name, Body=name.encode())
        for k, v in before.items():
            assert s.get_object(Bucket="shared", Key=k)["Body"].read() == v
    for node in (n1, n2, n3, gw):
        listed = {o["Key"] for o in node.s3(*creds).list_objects_v2(
            Bucket="shared")["Contents"]}
        assert set(before) | {f"v2-node{i}" for i in (1, 2, 3, 4)} <= listed


def test_no_traceback_in_logs(cluster: Cluster) -> None:
    for node in cluster.nodes:
        log = Path(node.log_path).read_text()
        assert "Traceback" not in log, log[-3000:]
