"""CleanupIncompleteUploads and InspectObject on a 3-node cluster (RF 3): uploads created
through node 1 are found and aborted through node 2, and seen aborted through node 3, node 1
being down by then (quorum reads and writes of the replicated tables, not local data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pygarage.testing.cluster import Cluster, FaultCluster


def test_cleanup_and_inspect_through_other_nodes(tmp_path: Path) -> None:
    c = FaultCluster(tmp_path, 3)
    try:
        c.start()
        c.create_key_and_bucket("cleanup")
        s3 = c.s3(0)
        ups = []
        for key in ("a", "b"):
            up = s3.create_multipart_upload(Bucket="cleanup", Key=key)["UploadId"]
            s3.upload_part(Bucket="cleanup", Key=key, UploadId=up, PartNumber=1, Body=b"p" * 5000)
            ups.append(up)
        s3.put_object(Bucket="cleanup", Key="done", Body=b"x")
        bid = c.nodes[1].admin("GetBucketInfo", {"globalAlias": "cleanup"})["id"]
        c.kill(0)
        [v] = c.nodes[2].admin("InspectObject", {"bucketId": bid, "key": "a"})["versions"]
        assert v["uploading"] and v["multipart"] and len(v["blocks"]) == 1
        res = c.nodes[1].admin("CleanupIncompleteUploads",
                               body={"bucketId": bid, "olderThanSecs": 0})
        assert res == {"uploadsDeleted": 2}
        for key in ("a", "b"):
            # The block list goes with the version entry, deleted by the object table's
            # cascade through an insert queue just after the answer.
            def versions(key: str = key) -> list[Any]:
                return c.nodes[2].admin("InspectObject",
                                        {"bucketId": bid, "key": key})["versions"]
            Cluster.wait_for(lambda: "blocks" not in versions()[0], timeout=15)
            [v] = versions()
            assert v["aborted"] and "blocks" not in v, v
        assert c.s3(2).list_multipart_uploads(Bucket="cleanup").get("Uploads", []) == []
        [v] = c.nodes[2].admin("InspectObject", {"bucketId": bid, "key": "done"})["versions"]
        assert v["inline"] and v["size"] == 1
    finally:
        c.stop()
