"""`garage worker`, `repair`, `block` and `meta`: multi-node admin calls and outputs."""

from __future__ import annotations

from typing import Any

import pytest

from pygarage.cli.testing import invoke

N1 = "563e1ac825ee3323aa441e72c26d1030d6d4414aeb3dd25287c531e7fc2bc95d"
N2 = "86f0f26ae4afbd59" + "0" * 48
HASH = "ab" * 32


def per_node(value: Any, *nodes: str) -> dict[str, Any]:
    return {"success": {n: value for n in nodes or (N1,)}, "error": {}}


def worker(wid: int, state: str, name: str, **kw: Any) -> dict[str, Any]:
    w: dict[str, Any] = {
        "id": wid,
        "name": name,
        "state": state,
        "errors": 0,
        "consecutiveErrors": 0,
        "lastError": None,
        "tranquility": None,
        "progress": None,
        "queueLength": None,
        "persistentErrors": None,
        "freeform": [],
    }
    w.update(kw)
    return w


def test_worker_list_table_and_flags() -> None:
    workers = [
        worker(3, "idle", "block resync", queueLength=0, tranquility=2),
        worker(1, "busy", "Merkle tree updater: object", progress="12%"),
        worker(
            7,
            "idle",
            "scrub",
            errors=3,
            consecutiveErrors=1,
            lastError={"message": "x", "secsAgo": 40},
        ),
    ]
    res, fake = invoke(["worker", "list"], {"ListWorkers": per_node(workers)})
    assert res.exit_code == 0, res.output
    assert fake.last("ListWorkers") == ({"node": "self"}, {"busyOnly": False, "errorOnly": False})
    lines = res.output.splitlines()
    assert lines[0].split() == [
        "TID", "State", "Name", "Tranq", "Done", "Queue", "Errors", "Consec", "Last",
    ]  # fmt: skip
    assert lines[1].startswith("1    busy")  # busy workers first
    assert lines[2].split()[:2] == ["3", "idle"]
    assert lines[3].split()[-5:] == ["-", "3", "1", "40s", "ago"]
    res, fake = invoke(["worker", "list", "-b", "-e"], {"ListWorkers": per_node([])})
    assert fake.last("ListWorkers") == ({"node": "self"}, {"busyOnly": True, "errorOnly": True})


def test_worker_info_get_set() -> None:
    info = worker(3, "idle", "Block scrub worker", tranquility=4, persistentErrors=1,
                  freeform=["Last scrub completed at never"])
    res, fake = invoke(["worker", "info", "3"], {"GetWorkerInfo": per_node(info)})
    assert fake.last("GetWorkerInfo") == ({"node": "self"}, {"id": 3})
    assert res.exit_code == 0, res.output
    assert "Worker name: Block scrub worker" in res.output and "Tranquility: 4" in res.output
    assert "Persistent errors: 1" in res.output and "Last scrub completed" in res.output
    res, fake = invoke(["worker", "info", "x"])
    assert res.exit_code == 2 and fake.calls == []
    res, fake = invoke(["worker", "get", "-a", "scrub-tranquility"],
                       {"GetWorkerVariable": per_node({"scrub-tranquility": "4"}, N1, N2)})
    assert fake.last("GetWorkerVariable") == ({"node": "*"}, {"variable": "scrub-tranquility"})
    assert res.exit_code == 0 and res.output.count("scrub-tranquility") == 2
    res, fake = invoke(["worker", "set", "resync-worker-count", "4"],
                       {"SetWorkerVariable": per_node({"variable": "resync-worker-count",
                                                       "value": "4"})})
    assert fake.last("SetWorkerVariable") == (
        {"node": "self"},
        {"variable": "resync-worker-count", "value": "4"},
    )
    assert res.exit_code == 0 and "resync-worker-count set to 4" in res.output


@pytest.mark.parametrize(
    ("what", "repair_type"),
    [
        (["tables"], "tables"),
        (["blocks"], "blocks"),
        (["versions"], "versions"),
        (["mpu"], "multipartUploads"),
        (["block-refs"], "blockRefs"),
        (["block-rc"], "blockRc"),
        (["rebalance"], "rebalance"),
        (["aliases"], "aliases"),
        (["scrub", "start"], {"scrub": "start"}),
        (["scrub", "cancel"], {"scrub": "cancel"}),
    ],
)
def test_repair_types(what: list[str], repair_type: Any) -> None:
    res, fake = invoke(["repair", "--yes", *what],
                       {"LaunchRepairOperation": per_node(None)})
    assert fake.calls == [("LaunchRepairOperation", {"node": "self"}, {"repairType": repair_type})]
    assert res.exit_code == 0 and "Repair operation launched on node" in res.output


def test_scrub_set_tranquility() -> None:
    res, fake = invoke(["repair", "--yes", "scrub", "set-tranquility", "7"],
                       {"SetWorkerVariable": per_node({"variable": "scrub-tranquility",
                                                       "value": "7"})})
    assert fake.calls == [("SetWorkerVariable", {"node": "self"},
                           {"variable": "scrub-tranquility", "value": "7"})]
    assert res.exit_code == 0 and "set to 7" in res.output
    for args in (["scrub", "set-tranquility"], ["scrub", "start", "3"],
                 ["scrub", "set-tranquility", "-1"]):
        res, fake = invoke(["repair", "--yes", *args])
        assert res.exit_code == 2 and fake.calls == [], args


def test_repair_needs_yes_and_all_nodes() -> None:
    res, fake = invoke(["repair", "tables"])
    assert res.exit_code == 1 and "--yes" in res.stderr and fake.calls == []
    for args in (["repair", "-a", "--yes", "blocks"], ["repair", "blocks", "-a", "--yes"]):
        res, fake = invoke(args)
        assert fake.last("LaunchRepairOperation") == ({"node": "*"}, {"repairType": "blocks"})
    res, fake = invoke(["repair", "--yes", "scrub", "explode"])
    assert res.exit_code == 2 and fake.calls == []


def test_block_list_errors_and_info() -> None:
    errors = [
        {
            "blockHash": HASH,
            "refcount": 1,
            "errorCount": 4,
            "lastTrySecsAgo": 30,
            "nextTryInSecs": 60,
        }
    ]
    res, fake = invoke(["block", "list-errors"], {"ListBlockErrors": per_node(errors)})
    assert res.exit_code == 0, res.output
    assert fake.last("ListBlockErrors") == ({"node": "self"}, None)
    assert res.output.splitlines()[1].split() == [HASH, "1", "4", "30s", "ago", "in", "60s"]

    info = {
        "blockHash": HASH,
        "refcount": 1,
        "versions": [
            {
                "versionId": "v1",
                "refDeleted": False,
                "versionDeleted": False,
                "garbageCollected": False,
                "backlink": {"object": {"bucketId": "cd" * 32, "key": "photo.jpg"}},
            }
        ],
    }
    res, fake = invoke(["block", "info", "abab"], {"GetBlockInfo": per_node(info)})
    assert res.exit_code == 0, res.output
    assert fake.last("GetBlockInfo") == ({"node": "self"}, {"blockHash": "abab"})
    assert f"Block hash: {HASH}" in res.output and "Refcount: 1" in res.output
    assert "v1       cdcdcdcdcdcdcdcd  photo.jpg  object" in res.output
    info.update(presentOn={"aa" * 32: True, "bb" * 32: False, "cc" * 32: None},
                resyncErrors=3)
    res, fake = invoke(["block", "info", "abab"], {"GetBlockInfo": per_node(info)})
    assert "Present on: aaaaaaaaaaaaaaaa (yes), bbbbbbbbbbbbbbbb (no), " \
        "cccccccccccccccc (no answer)" in res.output
    assert "Resync errors: 3" in res.output


def test_block_retry_now_and_purge() -> None:
    res, fake = invoke(["block", "retry-now", "--all"],
                       {"RetryBlockResync": per_node({"count": 3})})
    assert fake.last("RetryBlockResync") == ({"node": "self"}, {"all": True})
    assert res.exit_code == 0 and "3 blocks returned in queue" in res.output
    res, fake = invoke(["block", "retry-now", HASH, "cd" * 32],
                       {"RetryBlockResync": per_node({"count": 2})})
    assert fake.last("RetryBlockResync") == ({"node": "self"}, {"blockHashes": [HASH, "cd" * 32]})
    for bad in ([], ["--all", HASH]):
        res, fake = invoke(["block", "retry-now", *bad])
        assert res.exit_code == 1 and fake.calls == []

    res, fake = invoke(["block", "purge", HASH])
    assert res.exit_code == 1 and "--yes" in res.stderr and fake.calls == []
    out = {"blocksPurged": 1, "objectsDeleted": 2, "uploadsDeleted": 0, "versionsDeleted": 2}
    res, fake = invoke(["block", "purge", "--yes", HASH], {"PurgeBlocks": per_node(out)})
    assert fake.last("PurgeBlocks") == ({"node": "self"}, [HASH])
    assert res.exit_code == 0 and "Purged 1 blocks: 2 versions, 2 objects" in res.output


def test_meta_snapshot() -> None:
    ok = {"success": {"aa" * 32: None}, "error": {"bb" * 32: "disk full"}}
    res, fake = invoke(["meta", "snapshot", "--all"], {"CreateMetadataSnapshot": ok})
    assert fake.last("CreateMetadataSnapshot") == ({"node": "*"}, None)
    assert res.exit_code == 1 and "1 nodes returned an error" in res.stderr
    assert res.stdout.splitlines() == ["Node              Result",
                                       "aaaaaaaaaaaaaaaa  Snapshot created",
                                       "bbbbbbbbbbbbbbbb  Error: disk full"]
    res, fake = invoke(["meta", "snapshot"], {"CreateMetadataSnapshot": {
        "success": {"aa" * 32: None}, "error": {}}})
    assert fake.last("CreateMetadataSnapshot") == ({"node": "self"}, None)
    assert res.exit_code == 0 and "Snapshot created" in res.stdout

