"""A node killed (-9) while multi-block objects are written catches up by itself once
restarted: anti-entropy brings it the block references, its resync queue fetches the
blocks from the others. Real processes, 3 nodes in 3 zones, RF 3."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from pygarage.testing.cluster import Cluster, node_id
from pygarage.testing.node import GarageNode
from pygarage.testing.replicas import block_files
from pygarage.util.ids import block_hash


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("catchup"), replication_factor=3)
    try:
        c.start_zoned(3, 0)
        yield c
    finally:
        c.stop()


def _block_files(node: GarageNode) -> set[str]:
    return block_files(node.root / "data")


def test_restarted_node_gets_the_blocks_it_missed(cluster: Cluster) -> None:
    n1, n2, n3 = cluster.nodes
    key_id, secret = n1.create_key("catchup")
    n1.create_bucket("catchup", key_id)
    n3.kill()
    s3 = n1.s3(key_id, secret)
    bodies = {f"obj{i}": os.urandom(2 * 1024 * 1024 + i) for i in range(3)}
    for k, body in bodies.items():
        s3.put_object(Bucket="catchup", Key=k, Body=body)
    hashes = {block_hash(b[i:i + (1 << 20)]).hex()
              for b in bodies.values() for i in range(0, len(b), 1 << 20)}
    assert hashes <= _block_files(n1) and hashes <= _block_files(n2)
    assert not hashes & _block_files(n3)

    n3.start(single_node=False)
    nid = node_id(n3)
    cluster.wait_for(lambda: all(nid in Cluster.up_ids(n) for n in cluster.nodes), timeout=20)
    # Table sync (first pass ~10 s after start), then the resync (10 s after a reference).
    cluster.wait_for(lambda: hashes <= _block_files(n3), timeout=90)
    s3_3 = n3.s3(key_id, secret)
    for k, body in bodies.items():
        got = s3_3.get_object(Bucket="catchup", Key=k)["Body"].read()
        assert hashlib.md5(got).digest() == hashlib.md5(body).digest()
    errors = n3.admin("ListBlockErrors", {"node": "self"})["success"]
    assert next(iter(errors.values())) == []
