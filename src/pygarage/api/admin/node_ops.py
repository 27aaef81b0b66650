"""Admin endpoints about one node: statistics, workers, blocks."""

from __future__ import annotations

import time
from typing import Any

from ...model.garage import Garage
from ...rpc.system import VERSION
from .errors import AdminError, bad_request


def node_statistics(g: Garage) -> dict[str, Any]:
    lines = [f"Node ID: {g.system.node_id}", f"Hostname: {g.system.hostname}",
             f"Garage version: {VERSION}", f"Database engine: {g.db.engine}", "",
             "Table stats:", f"  {'Table':<18} {'Items':>10} {'InsQueue':>10}"]
    for t in g.tables:
        lines.append(f"  {t.name:<18} {t.data.count():>10} "
                     f"{g.db.tree_len(t.data.insert_queue):>10}")
    lines += ["", "Block manager stats:",
              f"  number of RC entries: {g.block_manager.rc.count()}",
              f"  corrupted blocks found: {g.block_manager.corruptions}"]
    return {"freeform": "\n".join(lines)}


def cluster_statistics(g: Garage) -> dict[str, Any]:
    layout = g.system.layout.current
    st = g.system.local_status()
    data = st["dataPartition"]
    lines = ["Storage nodes:", f"  {'ID':<18} {'Hostname':<16} {'Zone':<8} {'Capacity':>14} "
             f"{'Part.':>6} {'DataAvail':>16}"]
    for n, r in sorted(layout.node_roles().items()):
        if r.capacity is None:
            continue
        avail = data["available"] if n == g.system.node_id and data else None
        lines.append(f"  {n[:16]:<18} {g.system.hostname if n == g.system.node_id else '?':<16} "
                     f"{r.zone:<8} {r.capacity:>14} {layout.partitions_of(n):>6} "
                     f"{avail if avail is not None else '?':>16}")
    if data and layout.ring_ready():
        mine = layout.partitions_of(g.system.node_id)
        est = data["available"] * layout.partitions // mine if mine else 0
        lines += ["", "Estimated available storage space cluster-wide (might be lower in "
                  "practice):", f"  data: {est} bytes"]
    return {"freeform": "\n".join(lines)}


def list_workers(g: Garage, body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    now = time.time()
    for tid, info in sorted(g.runner.workers.items()):
        if body.get("busyOnly") and info.state.value != "busy":
            continue
        if body.get("errorOnly") and not info.errors:
            continue
        st = info.worker.status()
        out.append({"id": tid, "name": info.worker.name, "state": info.state.value,
                    "errors": info.errors, "consecutiveErrors": info.consecutive_errors,
                    "lastError": ({"message": info.last_error,
                                   "secsAgo": int(now - (info.last_error_at or now))}
                                  if info.last_error else None),
                    "tranquility": None, "progress": st.get("progress"),
                    "queueLength": st.get("queueLength"), "persistentErrors": None,
                    "freeform": _freeform(st.get("freeform"))})
    return out


def _freeform(lines: object) -> list[str]:
    return [str(x) for x in lines] if isinstance(lines, list) else []


def multi(g: Garage, fn: Any, *args: Any) -> dict[str, Any]:
    """Multi-node endpoint answer; only this node is reachable from here for now."""
    try:
        return {"success": {g.system.node_id: fn(*args)}, "error": {}}
    except AdminError as e:
        return {"success": {}, "error": {g.system.node_id: e.message}}


def block_info(g: Garage, body: dict[str, Any]) -> dict[str, Any]:
    h = str(body.get("blockHash", ""))
    try:
        raw = bytes.fromhex(h)
    except ValueError:
        raise bad_request("blockHash must be hex") from None
    if len(raw) != 32:
        raise bad_request("give the full 64-hex-digit block hash")
    refs = g.block_ref_table.data.read_range(raw, None, None, 1000)
    return {"blockHash": h, "refcount": g.block_manager.rc.get(raw),
            "versions": [{"versionId": r.version.hex(), "refDeleted": r.deleted}
                         for r in refs]}


def not_yet(what: str) -> AdminError:
    return AdminError(501, "NotImplemented", f"{what} is not implemented in pygarage yet")
