"""A deleted key never comes back in a listing of a 3-node RF 3 cluster (real processes),
even when the listing's read quorum includes a replica that missed the deletion: listings
filter the merge of the quorum's entries, not each replica's own view (table/quorum.py).

Two ways to make node 3 stale for a key then deleted:
- the link between nodes 1 and 3 delayed (0.6 s each way): a DELETE through node 1 is
  acknowledged by nodes 1 and 2 while its copy to node 3 is still on the way, and a
  listing through node 3 at once asks nodes 3 (stale) and 2 (fresh). Deterministic: this
  failed before the fix, for nearly every key;
- node 3 killed -9 while keys are deleted, restarted, and listings through each node at
  once and many times (anti-entropy and read repair race them: a guard, not a proof)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pygarage.testing.cluster import FaultCluster

BUCKET = "gone"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    c = FaultCluster(tmp_path_factory.mktemp("listing-deletes"), 3, zones=3,
                     replication_factor=3)
    try:
        c.start()
        c.create_key_and_bucket(BUCKET)
        yield c
    finally:
        c.stop()


def listed(s3: Any, prefix: str) -> set[str]:
    out: set[str] = set()
    token: dict[str, str] = {}
    while True:
        r = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix, MaxKeys=7, **token)
        out |= {o["Key"] for o in r.get("Contents", [])}
        if not r["IsTruncated"]:
            return out
        token = {"ContinuationToken": r["NextContinuationToken"]}


def test_a_replica_behind_on_a_delete_does_not_bring_the_key_back(
        cluster: FaultCluster) -> None:
    s1, s2, s3 = (cluster.s3(i) for i in range(3))
    for i in range(10):
        s2.put_object(Bucket=BUCKET, Key=f"slow/keep{i:02}", Body=b"kept")
    cluster.proxy.set_delay([cluster.names[0]], [cluster.names[2]], 0.6)
    try:
        seen: list[str] = []
        for i in range(12):
            key = f"slow/del{i:02}"
            s2.put_object(Bucket=BUCKET, Key=key, Body=b"short-lived")
            assert key in listed(s3, "slow/")  # node 3 holds it
            s1.delete_object(Bucket=BUCKET, Key=key)  # nodes 1 and 2 ack; 3 later
            got = listed(s3, "slow/")
            seen += sorted(k for k in got if k.startswith("slow/del"))
            assert {f"slow/keep{j:02}" for j in range(10)} <= got
            versions = s3.list_object_versions(Bucket=BUCKET, Prefix="slow/")
            seen += [v["Key"] for v in versions.get("Versions", [])
                     if v["Key"].startswith("slow/del")]
        assert seen == [], f"deleted keys listed through node 3: {seen}"
    finally:
        cluster.proxy.set_delay([cluster.names[0]], [cluster.names[2]], 0)


def test_a_node_killed_during_deletes_does_not_bring_keys_back(
        cluster: FaultCluster) -> None:
    s1 = cluster.s3(0)
    keys = [f"kill/k{i:03}" for i in range(60)]
    for k in keys:
        s1.put_object(Bucket=BUCKET, Key=k, Body=b"x")
    cluster.kill(2)
    deleted = set(keys[::2])
    for k in sorted(deleted):
        s1.delete_object(Bucket=BUCKET, Key=k)
    cluster.start_node(2)
    cluster.wait_connected()
    clients = [cluster.s3(i) for i in (2, 0, 1)]
    for round_ in range(10):
        for i, s in enumerate(clients):
            got = listed(s, "kill/")
            assert not got & deleted, (round_, i, sorted(got & deleted)[:5])
            assert got == set(keys) - deleted
