"""`garage status` and `garage layout ...`, with a fake admin client."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import Result

from pygarage.cli.testing import FakeAdminClient, invoke

N1 = "563e1ac825ee3323aa441e72c26d1030d6d4414aeb3dd25287c531e7fc2bc95d"
N2 = "86f0f26ae4afbd59" + "0" * 47 + "a"
N3 = "212f7572f0c89da9" + "0" * 47 + "b"


def run(args: list[str], responses: dict[str, Any] | None = None) -> tuple[Result, FakeAdminClient]:
    return invoke(args, responses)


def node(nid: str, up: bool = True, role: dict[str, Any] | None = None, **kw: Any) -> dict:
    return {
        "id": nid,
        "isUp": up,
        "lastSeenSecsAgo": kw.get("last_seen"),
        "hostname": kw.get("hostname", "host-" + nid[:4]),
        "addr": kw.get("addr", "10.0.0.1:3901"),
        "garageVersion": "v2.0.0",
        "role": role,
        "draining": kw.get("draining", False),
        "dataPartition": {"available": 50 * 10**9, "total": 100 * 10**9},
        "metadataPartition": None,
    }


def layout(roles: list[dict] | None = None, staged: list[dict] | None = None, **kw: Any) -> dict:
    return {
        "version": kw.get("version", 1),
        "roles": roles or [],
        "parameters": {"zoneRedundancy": kw.get("zr", "maximum")},
        "partitionSize": 10**6,
        "stagedRoleChanges": staged or [],
        "stagedParameters": kw.get("staged_params"),
    }


def role(nid: str, zone: str = "dc1", cap: int | None = 10**9, tags: list[str] | None = None):
    return {"id": nid, "zone": zone, "capacity": cap, "tags": tags or [], "usableCapacity": cap}


# ---- status -----------------------------------------------------------------------------


def test_status_quick_start_single_node() -> None:
    res, fake = run(
        ["status"],
        {
            "GetClusterStatus": {"layoutVersion": 0, "nodes": [node(N1, hostname="linuxbox")]},
            "GetClusterLayout": layout(version=0),
        },
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "==== HEALTHY NODES ===="
    assert lines[1].split() == [
        "ID", "Hostname", "Address", "Tags", "Zone", "Capacity", "DataAvail", "Version",
    ]  # fmt: skip
    assert lines[2].startswith("563e1ac825ee3323  linuxbox  10.0.0.1:3901")
    assert "NO ROLE ASSIGNED" in lines[2]
    assert "FAILED" not in res.output and "layout show" not in res.output
    assert fake.endpoints() == ["GetClusterStatus", "GetClusterLayout"]


def test_status_roles_failed_nodes_and_staged_changes() -> None:
    cluster = {
        "layoutVersion": 1,
        "nodes": [
            node(N1),
            node(N2, role={"zone": "par1", "capacity": 2 * 10**12, "tags": ["venus"]}),
            node(N3, up=False, role={"zone": "bru1", "capacity": None, "tags": []}, last_seen=3700),
        ],
    }
    lay = layout(
        [role(N2, "par1", 2 * 10**12, ["venus"]), role(N3, "bru1", None)],
        staged=[{"id": N1, "zone": "dc1", "capacity": 10**9, "tags": ["a", "b"]}],
    )
    res, _ = run(["status"], {"GetClusterStatus": cluster, "GetClusterLayout": lay})
    assert res.exit_code == 0, res.output
    out = res.output
    healthy, failed = out.split("==== FAILED NODES ====")
    assert "563e1ac825ee3323" in healthy and "pending..." in healthy
    n2_line = next(x for x in healthy.splitlines() if x.startswith("86f0f26ae4afbd59"))
    assert n2_line.split() == [
        "86f0f26ae4afbd59", "host-86f0", "10.0.0.1:3901", "[venus]", "par1", "2.0", "TB",
        "50.0", "GB", "(50.0%)", "v2.0.0",
    ]  # fmt: skip
    f_line = next(x for x in failed.splitlines() if x.startswith("212f7572f0c89da9"))
    assert "gateway" in f_line and "1 hour ago" in f_line
    assert "==== STAGED ROLE CHANGES ====" in out
    assert "garage layout show" in out


# ---- layout -----------------------------------------------------------------------------


def _cluster(*ids: str) -> dict:
    return {"layoutVersion": 1, "nodes": [node(i) for i in ids]}


def test_layout_assign_new_node_by_prefix() -> None:
    responses = {"GetClusterStatus": _cluster(N1, N2), "GetClusterLayout": layout()}
    res, fake = run(
        ["layout", "assign", "-z", "dc1", "-c", "1G", "-t", "a", "-t", "b", "563e"], responses
    )
    assert res.exit_code == 0, res.output
    assert fake.last("UpdateClusterLayout") == (
        None,
        {"roles": [{"id": N1, "zone": "dc1", "capacity": 10**9, "tags": ["a", "b"]}]},
    )
    assert "staged" in res.output


def test_layout_assign_gateway_replace_and_multiple() -> None:
    responses = {"GetClusterStatus": _cluster(N1, N2, N3), "GetClusterLayout": layout([role(N3)])}
    args = ["layout", "assign", "-z", "dc2", "-g", "563e", "86f0", "--replace", "212f"]
    res, fake = run(args, responses)
    assert res.exit_code == 0, res.output
    _, body = fake.last("UpdateClusterLayout")
    assert body["roles"] == [
        {"id": N3, "remove": True},
        {"id": N1, "zone": "dc2", "capacity": None, "tags": []},
        {"id": N2, "zone": "dc2", "capacity": None, "tags": []},
    ]


def test_layout_assign_keeps_previous_values() -> None:
    current = layout(
        [role(N1, "dc1", 10**9, ["old"])],
        staged=[{"id": N2, "zone": "dc9", "capacity": 5 * 10**9, "tags": ["st"]}],
    )
    responses = {"GetClusterStatus": _cluster(N1, N2), "GetClusterLayout": current}
    res, fake = run(["layout", "assign", "-c", "2TiB", "563e"], responses)
    assert res.exit_code == 0, res.output
    assert fake.last("UpdateClusterLayout")[1]["roles"] == [
        {"id": N1, "zone": "dc1", "capacity": 2 * 1024**4, "tags": ["old"]}
    ]
    res, fake = run(["layout", "assign", "-z", "dc3", N2[:6]], responses)
    assert fake.last("UpdateClusterLayout")[1]["roles"] == [
        {"id": N2, "zone": "dc3", "capacity": 5 * 10**9, "tags": ["st"]}
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "1G", "563e"], "Please specify a zone with the -z flag"),
        (["-z", "dc1", "563e"], "Please specify a capacity with the -c flag"),
        (["-z", "dc1", "-c", "1G", "-g", "563e"], "mutually exclusive"),
        (["-z", "dc1", "-c", "0", "563e"], "Invalid capacity value"),
        (["-z", "dc1", "-c", "1G", "ffff"], "No node found matching 'ffff'"),
        (["-z", "dc1", "-c", "1G", ""], "Empty node id"),
    ],
)
def test_layout_assign_errors(args: list[str], message: str) -> None:
    responses = {"GetClusterStatus": _cluster(N1, N2), "GetClusterLayout": layout()}
    res, fake = run(["layout", "assign", *args], responses)
    assert res.exit_code == 1, res.output
    assert message in res.stderr
    assert "UpdateClusterLayout" not in fake.endpoints()


def test_layout_assign_ambiguous_prefix() -> None:
    other = N1[:10] + "f" * 54
    responses = {"GetClusterStatus": _cluster(N1, other), "GetClusterLayout": layout()}
    res, _ = run(["layout", "assign", "-z", "a", "-c", "1G", "563e"], responses)
    assert res.exit_code == 1 and "2 nodes match" in res.stderr
    res, _ = run(["layout", "assign", "-c", "bad", "563e"], responses)
    assert res.exit_code == 2 and "invalid size" in res.stderr


def test_layout_remove_and_config() -> None:
    responses = {"GetClusterLayout": layout([role(N1), role(N2)])}
    res, fake = run(["layout", "remove", "86f0"], responses)
    assert res.exit_code == 0, res.output
    assert fake.last("UpdateClusterLayout") == (None, {"roles": [{"id": N2, "remove": True}]})
    res, _ = run(["layout", "remove", N3[:8]], responses)
    assert res.exit_code == 1
    for value, expected in (("max", "maximum"), ("none", "maximum"), ("2", {"atLeast": 2})):
        res, fake = run(["layout", "config", "-r", value])
        assert res.exit_code == 0, res.output
        _, body = fake.last("UpdateClusterLayout")
        assert body == {"roles": [], "parameters": {"zoneRedundancy": expected}}
    for bad in (["-r", "0"], ["-r", "lots"], []):
        res, fake = run(["layout", "config", *bad])
        assert res.exit_code == 2 and fake.calls == []


def test_layout_show_with_staged_changes() -> None:
    current = layout(
        [role(N2, "par1", 2 * 10**12, ["venus"]), role(N3, "bru1", None)],
        staged=[
            {"id": N1, "zone": "dc1", "capacity": 10**9, "tags": ["a"]},
            {"id": N3, "remove": True},
        ],
    )
    current["roles"][0]["usableCapacity"] = 19 * 10**11
    preview = {"message": ["==== SUMMARY ====", "Optimal partition size: 3.9 MB"],
               "newLayout": layout([role(N1, "dc1", 10**9, ["a"])], version=2)}  # fmt: skip
    res, fake = run(
        ["layout", "show"],
        {"GetClusterLayout": current, "PreviewClusterLayoutChanges": preview},
    )
    assert res.exit_code == 0, res.output
    out = res.output
    assert out.startswith("==== CURRENT CLUSTER LAYOUT ====\n")
    assert "ID                Tags     Zone  Capacity  Usable capacity" in out
    assert "86f0f26ae4afbd59  [venus]  par1  2.0 TB    1.9 TB (95.0%)" in out
    assert "Zone redundancy: maximum" in out
    assert "Current cluster layout version: 1" in out
    staged = out.split("==== STAGED ROLE CHANGES ====")[1]
    assert "212f7572f0c89da9  REMOVED" in staged
    assert "Optimal partition size: 3.9 MB" in out
    assert "garage layout apply --version 2" in out
    assert fake.endpoints() == ["GetClusterLayout", "PreviewClusterLayoutChanges"]


def test_layout_show_without_changes_and_with_preview_error() -> None:
    res, fake = run(["layout", "show"], {"GetClusterLayout": layout(zr={"atLeast": 2})})
    assert res.exit_code == 0
    assert "No nodes currently have a role" in res.output
    assert "Zone redundancy: at least 2" in res.output
    assert "PreviewClusterLayoutChanges" not in fake.endpoints()
    responses = {
        "GetClusterLayout": layout(staged_params={"zoneRedundancy": {"atLeast": 3}}),
        "PreviewClusterLayoutChanges": {"error": "not enough zones"},
    }
    res, _ = run(["layout", "show"], responses)
    assert "not enough zones" in res.output and "apply --version" not in res.output
    assert "Zone redundancy: at least 3" in res.output.split("STAGED")[1]


def test_layout_apply_revert_history_skip() -> None:
    applied = {"message": ["moved 12 partitions"], "layout": layout(version=5)}
    res, fake = run(["layout", "apply", "--version", "5"], {"ApplyClusterLayout": applied})
    assert res.exit_code == 0 and "moved 12 partitions" in res.output
    assert fake.last("ApplyClusterLayout") == (None, {"version": 5})
    res, fake = run(["layout", "apply"], {"GetClusterLayout": layout(version=3)})
    assert res.exit_code == 1
    assert "Please pass the new layout version number" in res.stderr and fake.calls == []

    res, fake = run(["layout", "revert"])
    assert res.exit_code == 1 and "--yes" in res.stderr and fake.calls == []
    res, fake = run(["layout", "revert", "--yes"], {"RevertClusterLayout": layout()})
    assert res.exit_code == 0 and fake.endpoints() == ["RevertClusterLayout"]

    hist = {
        "currentVersion": 3,
        "minAck": 2,
        "versions": [
            {"version": 3, "status": "Current", "storageNodes": 3, "gatewayNodes": 0},
            {"version": 2, "status": "Draining", "storageNodes": 2, "gatewayNodes": 1},
        ],
        "updateTrackers": {N1: {"ack": 3, "sync": 2, "syncAck": 2}},
    }
    res, _ = run(["layout", "history"], {"GetClusterLayoutHistory": hist})
    assert res.exit_code == 0
    assert "#3       current" in res.output and "draining" in res.output
    assert "563e1ac825ee3323  3    2     2" in res.output

    skip = {"ackUpdated": [N1], "syncUpdated": []}
    args = ["layout", "skip-dead-nodes", "--version", "3", "--allow-missing-data"]
    res, fake = run(args, {"ClusterLayoutSkipDeadNodes": skip})
    assert fake.last("ClusterLayoutSkipDeadNodes") == (
        None,
        {"version": 3, "allowMissingData": True},
    )
    assert "563e1ac825ee3323: ack tracker" in res.output
