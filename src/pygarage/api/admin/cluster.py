"""Admin endpoints for nodes, status and the cluster layout (Garage's admin API v2 shapes)."""

from __future__ import annotations

import asyncio
from typing import Any

from ...model.garage import Garage
from ...net.peer import RpcError
from ...rpc.layout.history import LayoutHistory
from ...rpc.layout.version import MAXIMUM, LayoutError, NodeRole, ZoneRedundancy
from ...rpc.system import VERSION
from ...util.ids import is_node_id
from ...util.peer_addr import PeerAddrError
from .errors import bad_request

MIN_CAPACITY = 1024  # Garage refuses smaller capacities: the partition size would be tiny
MAX_CAPACITY = 2**64 - 1


def _zr_json(zr: ZoneRedundancy) -> Any:
    return "maximum" if zr == MAXIMUM else {"atLeast": int(zr)}


def _role_json(n: str, r: NodeRole) -> dict[str, Any]:
    return {"id": n, "zone": r.zone, "capacity": r.capacity, "tags": list(r.tags)}


def layout_json(h: LayoutHistory) -> dict[str, Any]:
    cur = h.current
    ready = cur.ring_ready()
    roles = []
    for n, r in sorted(cur.node_roles().items()):
        stored = cur.partitions_of(n) if ready else None
        roles.append({**_role_json(n, r), "storedPartitions": stored,
                      "usableCapacity": (stored * cur.partition_size
                                         if stored is not None and r.capacity is not None
                                         else None)})
    staged = [{"id": n, "remove": True} if r is None else _role_json(n, r)
              for n, r in h.staged_roles().items()]
    szr = h.staged_zone_redundancy()
    return {"version": cur.version, "roles": roles,
            "parameters": {"zoneRedundancy": _zr_json(cur.zone_redundancy)},
            "partitionSize": cur.partition_size, "stagedRoleChanges": staged,
            "stagedParameters": None if szr is None else {"zoneRedundancy": _zr_json(szr)}}


def get_node_info(g: Garage) -> dict[str, Any]:
    s = g.system
    return {"nodeId": s.node_id, "hostname": s.hostname, "garageVersion": VERSION,
            "garageFeatures": ["lmdb", "sqlite", "metrics"], "dbEngine": g.db.engine,
            "rpcPublicAddr": (s.membership.public_addr if s.membership is not None
                              else g.config.rpc_public_addr)}


def get_cluster_status(g: Garage) -> dict[str, Any]:
    h = g.system.layout
    roles = h.current.node_roles()
    live = set(h.all_nodes())
    nodes = []
    for n in g.system.known_nodes():
        role = roles.get(n["id"])
        nodes.append({**n, "role": _role_json(n["id"], role) if role else None,
                      # Still holds data for an older live version, not in the current one.
                      "draining": role is None and n["id"] in live})
    return {"layoutVersion": h.current.version, "nodes": nodes}


def get_cluster_health(g: Garage) -> dict[str, Any]:
    layout = g.system.layout.current
    storage = layout.storage_nodes()
    known = g.system.known_nodes()
    up = {n["id"] for n in known if n["isUp"]}
    ok_nodes = [n for n in storage if n in up]
    quorum = g.system.replication.write_quorum
    # As Garage: a partition has quorum when each of its write sets (one per live layout
    # version, layout.md §4) has a write quorum of nodes up.
    h = g.system.layout
    parts = [h.write_sets(p) for p in range(layout.partitions)] \
        if layout.ring_ready() else []
    parts_quorum = sum(1 for sets in parts
                       if all(sum(n in up for n in s) >= quorum for s in sets))
    parts_all = sum(1 for sets in parts if all(n in up for s in sets for n in s))
    if not parts or parts_quorum < len(parts):
        status = "unavailable"
    elif parts_all == len(parts):
        status = "healthy"
    else:
        status = "degraded"
    return {"status": status, "knownNodes": len(known), "connectedNodes": len(up),
            "storageNodes": len(storage), "storageNodesOk": len(ok_nodes),
            "partitions": len(parts), "partitionsQuorum": parts_quorum,
            "partitionsAllOk": parts_all}


async def connect_cluster_nodes(g: Garage, body: Any) -> list[dict[str, Any]]:
    """One {success, error} per "<id>@<host>:<port>", as Garage answers."""
    if not isinstance(body, list) or not all(isinstance(a, str) for a in body):
        raise bad_request('body must be a list of "<node id>@<host>:<port>"')
    m = g.system.membership
    out: list[dict[str, Any]] = []
    for addr in body:
        if m is None:
            out.append({"success": False, "error": "this node's RPC is not running"})
            continue
        try:
            await m.connect(addr)
        except (RpcError, PeerAddrError) as e:
            out.append({"success": False, "error": str(e)})
        else:
            out.append({"success": True, "error": None})
    return out


def get_cluster_layout(g: Garage) -> dict[str, Any]:
    return layout_json(g.system.layout)


def _parse_role_change(r: Any) -> tuple[str, NodeRole | None]:
    if not isinstance(r, dict):
        raise bad_request("Invalid layout change: each role change is an object")
    node = r.get("id")
    if not is_node_id(node):
        raise bad_request("Invalid node identifier: expected 64 lowercase hex digits")
    if r.get("remove") is True and set(r) <= {"id", "remove"}:
        return node, None
    zone, cap, tags = r.get("zone"), r.get("capacity"), r.get("tags", [])
    if "remove" in r or not isinstance(zone, str) or not zone or "capacity" not in r:
        raise bad_request("Invalid layout change: expected {id, remove: true} or "
                          "{id, zone, capacity, tags}")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool)):
        raise bad_request("Invalid layout change: capacity must be a number of bytes or null")
    if cap is not None and cap < MIN_CAPACITY:
        raise bad_request("Capacity should be at least 1K (1024)")
    if cap is not None and cap > MAX_CAPACITY:
        # Stored and gossiped as a u64 (as by Garage): a larger one could not be saved.
        raise bad_request(f"Capacity should be at most {MAX_CAPACITY} bytes")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad_request("Invalid layout change: tags must be a list of strings")
    return node, NodeRole(zone, cap, tuple(tags))


def _parse_zone_redundancy(zr: Any, rf: int) -> ZoneRedundancy:
    if zr == "maximum":
        return MAXIMUM
    n = zr.get("atLeast") if isinstance(zr, dict) and set(zr) == {"atLeast"} else None
    if not isinstance(n, int) or isinstance(n, bool):
        raise bad_request('zoneRedundancy must be "maximum" or {"atLeast": <n>}')
    if n > rf:
        raise bad_request("The zone redundancy must be smaller or equal to the replication "
                          f"factor ({rf}).")
    if n < 1:
        raise bad_request("The zone redundancy must be at least 1.")
    return n


def update_cluster_layout(g: Garage, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("body must be {\"roles\": [...], \"parameters\": {...}}")
    roles = body.get("roles") or []
    if not isinstance(roles, list):
        raise bad_request("roles must be a list of role changes")
    changes = [_parse_role_change(r) for r in roles]  # all validated before any is staged
    params = body.get("parameters")
    zr = None
    if params is not None:
        if not isinstance(params, dict) or "zoneRedundancy" not in params:
            raise bad_request("parameters must be {\"zoneRedundancy\": ...}")
        zr = _parse_zone_redundancy(params["zoneRedundancy"],
                                    g.system.layout.current.replication_factor)
    h, clock = g.system.layout, g.system.clock
    for node, role in changes:
        h.stage_role(node, role, clock)
    if zr is not None:
        h.stage_parameters(zr, clock)
    g.system.save_layout()
    return layout_json(h)


async def preview_cluster_layout(g: Garage) -> dict[str, Any]:
    h = g.system.layout.copy()
    try:
        # The assignment takes seconds on large clusters: off the event loop.
        message = await asyncio.to_thread(h.apply, h.current.version + 1, g.system.clock)
    except LayoutError as e:
        return {"error": str(e)}
    return {"message": message, "newLayout": layout_json(h)}


async def apply_cluster_layout(g: Garage, body: Any) -> dict[str, Any]:
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad_request("Please pass the new layout version number to ensure that you are "
                          "writing the correct version of the cluster layout: "
                          "{\"version\": <current version + 1>}")
    async with g.system.layout_lock:
        h = g.system.layout.copy()
        try:
            message = await asyncio.to_thread(h.apply, version, g.system.clock)
        except LayoutError as e:
            raise bad_request(str(e)) from None
        # Merged, not swapped in: staging or tracker updates made meanwhile are kept.
        g.system.layout.merge(h)
        g.system.save_layout()
    return {"message": message, "layout": layout_json(g.system.layout)}


def revert_cluster_layout(g: Garage) -> dict[str, Any]:
    g.system.layout.revert(g.system.clock)
    g.system.save_layout()
    return layout_json(g.system.layout)


def get_layout_history(g: Garage) -> dict[str, Any]:
    h = g.system.layout
    min_stored = h.min_stored
    versions = []
    for v in (*reversed(h.versions), *reversed(h.old_versions)):
        if v.version == h.current.version:
            status = "Current"
        elif v.version >= min_stored:
            status = "Draining"
        else:
            status = "Historical"
        versions.append({"version": v.version, "status": status,
                         "storageNodes": len(v.storage_nodes()),
                         "gatewayNodes": len(v.gateway_nodes())})
    trackers = None
    if len(h.versions) > 1:
        t = h.trackers
        trackers = {n: {"ack": h.tracker(t.ack, n), "sync": h.tracker(t.sync, n),
                        "syncAck": h.tracker(t.sync_ack, n)} for n in h.all_nodes()}
    return {"currentVersion": h.current.version, "minAck": h.ack_min(), "versions": versions,
            "updateTrackers": trackers}


async def skip_dead_nodes(g: Garage, body: Any) -> dict[str, Any]:
    version = body.get("version") if isinstance(body, dict) else None
    allow = body.get("allowMissingData", False) if isinstance(body, dict) else False
    if not isinstance(version, int) or isinstance(version, bool) or not isinstance(allow, bool):
        raise bad_request("body must be {\"version\": <n>, \"allowMissingData\": <bool>}")
    up = {n["id"] for n in g.system.known_nodes() if n["isUp"]}
    async with g.system.layout_lock:
        h = g.system.layout
        try:
            acked, synced = h.skip_dead_nodes(version, up, allow)
        except LayoutError as e:
            raise bad_request(str(e)) from None
        g.system.save_layout()
    return {"ackUpdated": acked, "syncUpdated": synced}


def ensure_single_node_layout(g: Garage) -> bool:
    """`garage server --single-node`: give this node a role if the layout has none."""
    h = g.system.layout
    if h.current.ring_ready():
        return False
    usage = g.system.local_status()["dataPartition"]
    cap = max(MIN_CAPACITY, usage["available"] if usage else 1 << 30)
    h.stage_role(g.system.node_id, NodeRole("dc1", cap, ()), g.system.clock)
    h.apply(h.current.version + 1, g.system.clock)
    g.system.save_layout()
    return True
