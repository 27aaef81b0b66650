"""Admin endpoints for nodes, status and the cluster layout."""

from __future__ import annotations

from typing import Any

from ...model.garage import Garage
from ...rpc.layout.version import LayoutError, LayoutVersion, NodeRole
from ...rpc.system import VERSION
from .errors import bad_request


def _layout_json(g: Garage, v: LayoutVersion | None = None) -> dict[str, Any]:
    h = g.system.layout
    cur = v or h.current
    roles = [{"id": n, "zone": r.zone, "capacity": r.capacity, "tags": list(r.tags),
              "storedPartitions": cur.partitions_of(n) if cur.ring else None,
              "usableCapacity": (cur.partitions_of(n) * cur.partition_size
                                 if cur.ring and r.capacity is not None else None)}
             for n, r in sorted(cur.roles.items())]
    staged = []
    for n, r in sorted(h.staged_roles.items()):
        staged.append({"id": n, "remove": True} if r is None else
                      {"id": n, "zone": r.zone, "capacity": r.capacity, "tags": list(r.tags)})
    zr = cur.zone_redundancy
    return {"version": cur.version, "roles": roles,
            "parameters": {"zoneRedundancy": zr if zr == "maximum" else {"atLeast": zr}},
            "partitionSize": cur.partition_size, "stagedRoleChanges": staged,
            "stagedParameters": (None if h.staged_zone_redundancy is None else
                                 {"zoneRedundancy": h.staged_zone_redundancy})}


def get_node_info(g: Garage, query: dict[str, str]) -> dict[str, Any]:
    s = g.system
    info = {"nodeId": s.node_id, "hostname": s.hostname, "garageVersion": VERSION,
            "garageFeatures": ["lmdb", "sqlite", "metrics"], "dbEngine": g.db.engine,
            "rpcPublicAddr": g.config.rpc_public_addr}
    return {"success": {s.node_id: info}, "error": {}}


def get_cluster_status(g: Garage) -> dict[str, Any]:
    nodes = []
    roles = g.system.layout.current.roles
    for n in g.system.known_nodes():
        role = roles.get(n["id"])
        nodes.append({**n, "role": role.to_obj() if role else None, "draining": False})
    return {"layoutVersion": g.system.layout.current.version, "nodes": nodes}


def get_cluster_health(g: Garage) -> dict[str, Any]:
    layout = g.system.layout.current
    storage = layout.storage_nodes()
    up = {g.system.node_id}
    ok_nodes = [n for n in storage if n in up]
    quorum = g.system.replication.write_quorum
    parts_quorum = sum(1 for p in layout.ring if sum(n in up for n in p) >= quorum)
    parts_all = sum(1 for p in layout.ring if all(n in up for n in p))
    if not layout.ring or parts_quorum < len(layout.ring):
        status = "unavailable"
    elif parts_all == len(layout.ring):
        status = "healthy"
    else:
        status = "degraded"
    return {"status": status, "knownNodes": len(g.system.known_nodes()), "connectedNodes": 1,
            "storageNodes": len(storage), "storageNodesOk": len(ok_nodes),
            "partitions": len(layout.ring), "partitionsQuorum": parts_quorum,
            "partitionsAllOk": parts_all}


def get_cluster_layout(g: Garage) -> dict[str, Any]:
    return _layout_json(g)


def update_cluster_layout(g: Garage, body: dict[str, Any]) -> dict[str, Any]:
    h = g.system.layout
    for r in body.get("roles", []):
        node = str(r.get("id", ""))
        if len(node) != 64:
            raise bad_request(f"invalid node id {node!r}: expected 64 hex digits")
        if r.get("remove"):
            h.stage_role(node, None)
            continue
        cap = r.get("capacity")
        if cap is not None and (not isinstance(cap, int) or cap <= 0):
            raise bad_request("capacity must be a positive number of bytes (or null for a "
                              "gateway)")
        if not r.get("zone"):
            raise bad_request("a zone is required")
        h.stage_role(node, NodeRole(str(r["zone"]), cap, tuple(r.get("tags", []))))
    params = body.get("parameters")
    if params and "zoneRedundancy" in params:
        zr = params["zoneRedundancy"]
        h.stage_parameters("maximum" if zr == "maximum" else int(zr["atLeast"]))
    g.system.save_layout()
    return _layout_json(g)


def preview_cluster_layout(g: Garage) -> dict[str, Any]:
    try:
        new, report = g.system.layout.preview()
    except LayoutError as e:
        return {"error": str(e)}
    return {"message": report, "newLayout": _layout_json(g, new)}


def apply_cluster_layout(g: Garage, body: dict[str, Any]) -> dict[str, Any]:
    try:
        version = int(body["version"])
    except (KeyError, TypeError, ValueError):
        raise bad_request("body must be {\"version\": <next layout version>}") from None
    try:
        report = g.system.layout.apply(version)
    except LayoutError as e:
        raise bad_request(str(e)) from None
    g.system.save_layout()
    return {"message": report, "layout": _layout_json(g)}


def revert_cluster_layout(g: Garage) -> dict[str, Any]:
    g.system.layout.revert()
    g.system.save_layout()
    return _layout_json(g)


def get_layout_history(g: Garage) -> dict[str, Any]:
    cur = g.system.layout.current
    return {"currentVersion": cur.version, "minAck": cur.version,
            "versions": [{"version": cur.version, "status": "Current",
                          "storageNodes": len(cur.storage_nodes()),
                          "gatewayNodes": len(cur.gateway_nodes())}],
            "updateTrackers": None}


def ensure_single_node_layout(g: Garage) -> bool:
    """`garage server --single-node`: give this node a role if the layout has none."""
    h = g.system.layout
    if h.current.ring:
        return False
    usage = g.system.local_status()["dataPartition"]
    cap = max(1, usage["available"] if usage else 1 << 30)
    h.stage_role(g.system.node_id, NodeRole("dc1", cap, ()))
    h.apply(h.current.version + 1)
    g.system.save_layout()
    return True
