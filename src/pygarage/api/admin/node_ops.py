"""Admin endpoints about one node: statistics, workers, blocks."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

from ...model.garage import Garage
from ...model.repair import RepairError, RepairNotAvailable, launch_repair
from ...model.snapshot import SnapshotBusy, async_snapshot_metadata
from ...net.peer import RpcError
from ...rpc.system import VERSION
from ...util.background import VarError, WorkerInfo, WorkerState
from ...util.ids import is_node_id
from .errors import AdminError, bad_request


def node_statistics(g: Garage) -> dict[str, Any]:
    """The node part of `garage stats`: every figure read from the db and the disks now."""
    tables = [table_stats(g, t) for t in g.tables]
    bm = g.block_manager
    blocks = {"rcEntries": bm.rc.count(), "resyncQueueLen": _resync_queue_len(g),
              "resyncErrors": _resync_errors(g)}

    def opt(v: object) -> str:
        return "-" if v is None else str(v)

    lines = [f"Node ID: {g.system.node_id}", f"Hostname: {g.system.hostname}",
             f"Garage version: {VERSION}", f"Database engine: {g.db.engine}", "",
             "Table stats:",
             f"  {'Table':<18} {'Items':>10} {'MklItems':>10} {'MklTodo':>8} "
             f"{'InsQueue':>9} {'GcTodo':>7}"]
    for t in tables:
        lines.append(f"  {t['tableName']:<18} {t['items']:>10} {t['merkleItems']:>10} "
                     f"{t['merkleQueueLen']:>8} {t['insertQueueLen']:>9} "
                     f"{opt(t['gcQueueLen']):>7}")
    lines += ["", "Block manager stats:",
              f"  number of RC entries (~= number of blocks): {blocks['rcEntries']}",
              f"  resync queue length: {opt(blocks['resyncQueueLen'])}",
              f"  blocks with resync errors: {opt(blocks['resyncErrors'])}",
              f"  corrupted blocks found by reads: {bm.corruptions}"]
    if g.scrub is not None:
        lines.append(f"  corrupted blocks found by the scrub: {g.scrub.st.corruptions}")
    lines += ["", "Storage:"]
    lay = bm.store.layout
    for d, slots in zip(lay.dirs, lay.slot_counts(), strict=True):
        role = f"{slots} of {len(lay.prim)} slots" if d.writable else "read-only"
        lines.append(f"  data {d.path}: {_disk(d.path)} ({role})")
    lines.append(f"  metadata {g.config.metadata_dir}: {_disk(str(g.config.metadata_dir))}")
    return {"freeform": "\n".join(lines), "tableStats": tables, "blockManagerStats": blocks}


def table_stats(g: Garage, t: Any) -> dict[str, Any]:
    db = g.db
    return {"tableName": t.name, "items": t.data.count(),
            "merkleItems": db.tree_len(t.data.merkle.tree),
            "merkleQueueLen": t.data.merkle.pending(),
            "insertQueueLen": db.tree_len(t.data.insert_queue),
            "gcQueueLen": _gc_queue_len(g, t)}


def _gc_queue_len(g: Garage, t: Any) -> int | None:
    """Tombstones waiting for GC (None: tables whose tombstones are kept, as in Garage)."""
    for gc in g.table_gcs:
        if gc.table is t:
            return g.db.tree_len(gc.todo_tree)
    return None


def _resync_queue_len(g: Garage) -> int:
    return g.block_manager.resync.queue_len()


def _resync_errors(g: Garage) -> int:
    return g.block_manager.resync.errors_len()


def _disk(path: str) -> str:
    try:
        st = os.statvfs(path)
    except OSError as e:
        return f"unavailable ({e.strerror})"
    total, avail = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    pct = 100 * avail / total if total else 0.0
    return f"{avail} bytes free of {total} ({pct:.1f}%)"


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
    for _tid, info in sorted(g.runner.workers.items()):
        busy = info.state in (WorkerState.BUSY, WorkerState.THROTTLED)
        if body.get("busyOnly") and not busy:
            continue
        if body.get("errorOnly") and not info.errors:
            continue
        out.append(_worker_info(info))
    return out


def worker_info(g: Garage, body: dict[str, Any]) -> dict[str, Any]:
    info = g.runner.workers.get(int(body["id"]))
    if info is None:
        raise AdminError(404, "NoSuchWorker", f"no worker with id {body['id']} on this node "
                         "(see `garage worker list`)")
    return _worker_info(info)


def _worker_info(info: WorkerInfo) -> dict[str, Any]:
    now = time.time()
    st = info.worker.status()
    state: Any = info.state.value
    if info.state is WorkerState.THROTTLED:
        state = {"throttled": {"durationSecs": round(info.throttle_secs, 3)}}
    return {"id": info.tid, "name": info.worker.name, "state": state,
            "errors": info.errors, "consecutiveErrors": info.consecutive_errors,
            "lastError": ({"message": info.last_error,
                           "secsAgo": int(now - (info.last_error_at or now))}
                          if info.last_error else None),
            "tranquility": st.get("tranquility"), "progress": st.get("progress"),
            "queueLength": st.get("queueLength"),
            "persistentErrors": st.get("persistentErrors"),
            "freeform": _freeform(st.get("freeform"))}


def get_worker_variable(g: Garage, body: dict[str, Any]) -> dict[str, str]:
    name = body.get("variable")
    try:
        return g.bg_vars.get_all() if name is None else {name: g.bg_vars.get(name)}
    except VarError as e:
        raise bad_request(str(e)) from None


async def set_worker_variable(g: Garage, body: dict[str, Any]) -> dict[str, str]:
    name, value = body["variable"], body["value"]
    try:
        await g.bg_vars.set(name, value)
    except VarError as e:
        raise bad_request(str(e)) from None
    return {"variable": name, "value": g.bg_vars.get(name)}


async def launch_repair_operation(g: Garage, body: dict[str, Any]) -> None:
    try:
        await launch_repair(g, body["repairType"])
    except RepairNotAvailable as e:
        raise AdminError(501, "NotImplemented", str(e)) from None
    except RepairError as e:
        raise bad_request(str(e)) from None


async def create_metadata_snapshot(g: Garage) -> None:
    try:
        await async_snapshot_metadata(g)
    except SnapshotBusy as e:
        raise AdminError(409, "SnapshotInProgress", str(e)) from None
    except OSError as e:
        raise AdminError(500, "InternalError", f"metadata snapshot failed: {e}") from None


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
    elif is_node_id(target):
        targets = [target]
    else:
        raise bad_request('node must be "self", "*" or a full node id (64 hex digits)')
    out: dict[str, Any] = {"success": {}, "error": {}}

    async def one(node: str) -> None:
        if node == me:
            try:
                res = local()
                out["success"][me] = await res if inspect.isawaitable(res) else res
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


def not_yet(what: str) -> AdminError:
    return AdminError(501, "NotImplemented", f"{what} is not implemented in pygarage yet")
