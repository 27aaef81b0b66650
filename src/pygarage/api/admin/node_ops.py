"""Admin endpoints about one node: statistics, workers, blocks."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from ...model.garage import Garage
from ...net.peer import RpcError
from ...rpc.system import VERSION
from .errors import AdminError, bad_request

_NODE_ID = re.compile(r"^[0-9a-f]{64}$")


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
    known = {k["id"]: k for k in g.system.known_nodes()}  # hostnames and disks by status
    for n, r in sorted(layout.node_roles().items()):
        if r.capacity is None:
            continue
        k = known.get(n, {})
        avail = (k.get("dataPartition") or {}).get("available")
        lines.append(f"  {n[:16]:<18} {k.get('hostname') or '?':<16} "
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


async def multi(g: Garage, endpoint: str, query: dict[str, str], body: Any,
                local: Callable[[], Any]) -> dict[str, Any]:
    """A multi-node endpoint (Garage's `?node=self|*|<id>`): this node answers with
    `local`, other nodes through their admin RPC; a node that fails lands in `error`."""
    me = g.system.node_id
    target = query.get("node", "self")
    if target == "self":
        targets = [me]
    elif target == "*":
        targets = [n["id"] for n in g.system.known_nodes()]
    elif _NODE_ID.match(target):
        targets = [target]
    else:
        raise bad_request('node must be "self", "*" or a full node id (64 hex digits)')
    out: dict[str, Any] = {"success": {}, "error": {}}

    async def one(node: str) -> None:
        if node == me:
            try:
                out["success"][me] = local()
            except AdminError as e:
                out["error"][me] = e.message
            return
        m = g.system.membership
        if m is None:
            out["error"][node] = "this node's RPC is not running"
            return
        try:
            res = await m.call_admin(bytes.fromhex(node), endpoint,
                                     dict(query, node="self"), body)
        except RpcError as e:
            out["error"][node] = str(e)
            return
        if not isinstance(res, dict) or not isinstance(res.get("success"), dict) or \
                not isinstance(res.get("error"), dict):
            out["error"][node] = "invalid answer"
            return
        if node in res["success"]:
            out["success"][node] = res["success"][node]
        else:
            out["error"][node] = str(res["error"].get(node, "no answer"))

    await asyncio.gather(*(one(n) for n in targets))
    return out


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
