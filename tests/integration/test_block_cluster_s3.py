"""Multi-block objects through S3 on real processes: 3 storage nodes in 3 zones (RF 3) and a
gateway. Written through one node, every block file lands on the 3 storage nodes and the
object reads back through every node (the gateway fetches every block from the others);
with one node killed, multi-block PUTs and GETs go on through the others."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from pygarage.testing.cluster import Cluster, node_id
from pygarage.testing.node import GarageNode
from pygarage.testing.replicas import block_files
from pygarage.util.ids import block_hash


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("blocks"), replication_factor=3)
    try:
        c.start_zoned(3, 1)
        yield c
    finally:
        c.stop()


def _block_files(node: GarageNode) -> set[str]:
    return block_files(node.root / "data")


def test_multiblock_objects_across_nodes(cluster: Cluster) -> None:
    n1, n2, n3, gw = cluster.nodes
    key_id, secret = n1.create_key("blocks")
    n1.create_bucket("big", key_id)
    body = os.urandom(3 * 1024 * 1024 + 12345)  # 4 blocks
    digest = hashlib.md5(body).hexdigest()
    n2.s3(key_id, secret).put_object(Bucket="big", Key="obj", Body=body)
    hashes = {block_hash(body[i:i + (1 << 20)]).hex() for i in range(0, len(body), 1 << 20)}
    cluster.wait_for(lambda: all(hashes <= _block_files(n) for n in (n1, n2, n3)), timeout=20)
    assert not hashes & _block_files(gw)  # a gateway stores no blocks
    for n in cluster.nodes:
        got = n.s3(key_id, secret).get_object(Bucket="big", Key="obj")["Body"].read()
        assert hashlib.md5(got).hexdigest() == digest
        part = n.s3(key_id, secret).get_object(Bucket="big", Key="obj",
                                              Range="bytes=1048000-2097999")["Body"].read()
        assert part == body[1048000:2098000]

    # One storage node down: writes at quorum 2, reads from the others, gateway included.
    n3.kill()
    body2 = os.urandom(2 * 1024 * 1024 + 7)
    gw.s3(key_id, secret).put_object(Bucket="big", Key="obj2", Body=body2)
    for n in (n1, n2, gw):
        s3 = n.s3(key_id, secret)
        assert s3.get_object(Bucket="big", Key="obj2")["Body"].read() == body2
        assert hashlib.md5(s3.get_object(Bucket="big", Key="obj")["Body"].read()
                           ).hexdigest() == digest
    n3.start(single_node=False)
    nid = node_id(n3)
    cluster.wait_for(lambda: all(nid in Cluster.up_ids(n) for n in cluster.nodes), timeout=20)


def test_block_admin_through_the_cluster(cluster: Cluster) -> None:
    n1 = cluster.nodes[0]
    res = n1.admin("ListBlockErrors", {"node": "*"})
    assert res["error"] == {} and len(res["success"]) == 4
    res = n1.admin("GetNodeStatistics", {"node": "self"})
    assert "resync queue length" in next(iter(res["success"].values()))["freeform"]
