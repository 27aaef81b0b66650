"""Bucket counters in a real server: the daemon's propagator publishes them into the
replicated counter table, and a node that stores objects but never counted them (its local
counts and published entries gone, as after an upgrade from node-local counters) counts them
at its next start."""

from __future__ import annotations

import time
from typing import Any

from pygarage.db.open import open_db
from pygarage.model.counters import DIRTY_TREE, INIT_KEY, LOCAL_TREE
from pygarage.testing.node import GarageNode

WORKER = "bucket counters propagation"


def counts(node: GarageNode, bucket: str) -> tuple[int, ...]:
    i = node.admin("GetBucketInfo", {"globalAlias": bucket})
    return (i["objects"], i["bytes"], i["unfinishedUploads"],
            i["unfinishedMultipartUploadParts"], i["unfinishedMultipartUploadBytes"])


def published(node: GarageNode) -> tuple[int, Any]:
    """Items of the counter table, and the propagator's status."""
    stats = node.admin("GetNodeStatistics", body={})
    text = next(iter(stats["success"].values()))["freeform"]
    items = next(int(line.split()[1]) for line in text.splitlines()
                 if line.split()[:1] == ["bucket_counter"])
    workers = next(iter(node.admin("ListWorkers", body={})["success"].values()))
    return items, next(w for w in workers if w["name"] == WORKER)


def wait_published(node: GarageNode) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items, w = published(node)
        if items == 1 and w["queueLength"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"counters not published: {published(node)}")


def test_counters_are_published_and_recounted_at_first_start(
        private_node: GarageNode) -> None:
    n = private_node
    n.start()
    key, secret = n.create_key()
    n.create_bucket("cnt", key)
    s3 = n.s3(key, secret)
    for i in range(3):
        s3.put_object(Bucket="cnt", Key=f"k{i}", Body=b"x" * (1000 * (i + 1)))
    up = s3.create_multipart_upload(Bucket="cnt", Key="big")["UploadId"]
    for p in (1, 2):
        s3.upload_part(Bucket="cnt", Key="big", UploadId=up, PartNumber=p, Body=b"y" * 4000)
    expected = (3, 6000, 1, 2, 8000)
    assert counts(n, "cnt") == expected
    wait_published(n)

    # Forget every count and every published entry, as a node that never counted.
    n.stop()
    db = open_db("lmdb", n.root / "meta")
    store = "bucket_counter:table"
    for tree in (LOCAL_TREE, DIRTY_TREE, store):
        db.open_tree(tree)
        for k, _ in db.range(tree):
            db.remove(tree, k)
    assert db.get(LOCAL_TREE, INIT_KEY) is None
    db.close()

    n.start()
    assert counts(n, "cnt") == expected
    wait_published(n)
    s3.delete_object(Bucket="cnt", Key="k0")
    s3.abort_multipart_upload(Bucket="cnt", Key="big", UploadId=up)
    # The upload's entry is marked deleted by the object table's cascade, after the abort.
    deadline = time.monotonic() + 20
    while counts(n, "cnt") != (2, 5000, 0, 0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counts(n, "cnt") == (2, 5000, 0, 0, 0)
