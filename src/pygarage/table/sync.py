"""Anti-entropy between the replicas of a table (Garage's table/sync.rs behaviour).

Per table, a worker runs full passes over the partitions this node stores: for each, it
compares Merkle roots with every other storage node of the partition (in every live layout
version), descends only into subtrees whose hashes differ, and pushes the entries the other
node lacks or holds differently. Pulling is left to the other node's own pass. Partitions
this node no longer stores are offloaded: pushed to their owners, then deleted locally.

Passes run at start, every 10 minutes (with jitter), at once when the layout's versions or
trackers change what is live, and when a node comes back. A peer a pass could not sync with
(down, cut off, too slow) has its partitions retried alone within seconds (CatchUp).
A pass finished with every partition synced (a write quorum of each storage set reached)
records the layout version it started for; the minimum over tables is this node's `sync`
tracker, which lets the old layout version be retired.

Endpoints (validated: a malformed request is an RpcError, never a crash):
  table/<name>/sync/roots  [partition, ...]               -> [root hash, ...]
  table/<name>/sync/nodes  {"p": partition, "pre": [prefix, ...]} -> [node encoding|None]
  table/<name>/sync/items  [encoded entry, ...]           -> None (merged, no write check)
  table/<name>/sync/behind [node id, [partition, ...]]    -> None (that node missed writes
                                                             of these partitions: catch it up)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from typing import Any, Protocol

from ..db.base import Transaction
from ..net.conn import PRIO_BACKGROUND
from ..net.peer import IncomingRequest, RpcError
from ..rpc.rpc_helper import RpcHelper
from ..rpc.system import System
from ..util.background import WorkerState
from ..util.errors import QuorumError
from ..util.ids import is_node_id
from . import merkle
from .replication import FullCopy
from .sync_plan import (
    CatchUp,
    FullSync,
    SyncPartition,
    SyncTrackers,
    batch_by_size,
    needs_remote,
    partition_synced,
    peers_of,
    plan_full_sync,
    plan_step,
)
from .table import Table

log = logging.getLogger(__name__)

ANTI_ENTROPY_INTERVAL_S = 600.0  # Garage: every 10 minutes
STARTUP_DELAY_S = 10.0  # first pass (peers coming up trigger one sooner)
RPC_TIMEOUT_S = 30.0  # Garage's TABLE_SYNC_RPC_TIMEOUT
PARTITIONS_PER_STEP = 16  # partitions whose roots go in one request per peer
MAX_PREFIXES = 256  # Merkle nodes per request
MAX_ITEMS = 1024  # entries per pushed batch (and accepted per request)
MAX_BATCH_BYTES = 1 << 20
_N = merkle.N_PARTITIONS


class SyncFailed(Exception):
    pass


class SyncTrackerHub:
    """The tables' finished passes -> this node's sync tracker in the layout history."""

    def __init__(self, system: System):
        self.system = system
        self.trackers = SyncTrackers()

    def add_table(self, name: str) -> None:
        self.trackers.add_table(name, self.system.layout.min_stored)

    def table_done(self, name: str, version: int) -> None:
        v = self.trackers.table_done(name, version)
        if v is None or (self.system.synced_until or -1) >= v:
            return
        self.system.synced_until = v
        if self.system.layout.trackers.sync.get(self.system.node_id, -1) >= v:
            return  # already there (a single node holds every copy)
        self.system.save_layout()  # refresh our trackers, prune, persist, gossip
        log.info("sync tracker of this node: layout version %d", v)


# ---------------------------------------------------------------- request validation

def _is_int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def check_partitions(body: Any) -> list[int]:
    if not isinstance(body, list) or len(body) > _N or not all(_is_int(p, 0, _N - 1)
                                                               for p in body):
        raise RpcError("expected a list of partitions (0-255)")
    return body


def check_node_request(body: Any) -> tuple[int, list[bytes]]:
    if not isinstance(body, dict) or not _is_int(body.get("p"), 0, _N - 1):
        raise RpcError("expected {p: partition, pre: [prefix]}")
    pre = body.get("pre")
    if not isinstance(pre, list) or len(pre) > MAX_PREFIXES or not all(
            isinstance(x, bytes) and len(x) <= merkle.MAX_DEPTH and all(b < 16 for b in x)
            for x in pre):
        raise RpcError(f"expected at most {MAX_PREFIXES} Merkle prefixes (nibbles)")
    return body["p"], pre


def check_behind(body: Any) -> tuple[str, list[int]]:
    if not isinstance(body, list) or len(body) != 2 or not is_node_id(body[0]):
        raise RpcError("expected [node id, [partition, ...]]")
    return body[0], check_partitions(body[1])


def check_items(body: Any) -> list[bytes]:
    if not isinstance(body, list) or len(body) > MAX_ITEMS or not all(
            isinstance(x, bytes) for x in body):
        raise RpcError(f"expected a list of at most {MAX_ITEMS} encoded entries")
    return body


class TableSyncer:
    """The sync endpoints and worker of one table (a Worker for BackgroundRunner)."""

    def __init__(self, system: System, rpc: RpcHelper, table: Table[Any],
                 hub: SyncTrackerHub, *, interval_s: float = ANTI_ENTROPY_INTERVAL_S,
                 startup_delay_s: float = STARTUP_DELAY_S):
        self.system = system
        self.rpc = rpc
        self.table = table
        self.data = table.data
        self.hub = hub
        self.name = f"{table.name} sync"
        self.interval_s = interval_s
        base = f"table/{table.name}/sync"
        self.p_roots, self.p_nodes, self.p_items = f"{base}/roots", f"{base}/nodes", \
            f"{base}/items"
        self.p_behind = f"{base}/behind"
        rpc.register(self.p_roots, self._h_roots)
        rpc.register(self.p_nodes, self._h_nodes)
        rpc.register(self.p_items, self._h_items)
        rpc.register(self.p_behind, self._h_behind)
        hub.add_table(table.name)
        system.on_layout_saved.append(self._layout_saved)
        table.on_missed_write = self._missed_write
        rpc.on_peer_up.append(self._link_up)
        self.current: FullSync | None = None
        self._want_full = False  # start a new pass now (layout change, repair)
        self._want_next = False  # start one once the current pass ends (a node came up)
        self._next_full: float | None = None
        self._startup_delay_s = startup_delay_s
        self._digest: tuple[int, int, int] | None = None
        self._up: set[str] = set()
        self.catch_up = CatchUp()
        self._wake = asyncio.Event()
        # figures for status()
        self.passes = 0
        self.last_pass_version: int | None = None
        self.items_sent = 0
        self.items_received = 0
        self.items_offloaded = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------ triggers

    def add_full_sync(self) -> None:
        """Start a new full pass as soon as the worker runs (repair tables)."""
        self._want_full = True
        self._wake.set()

    def _layout_digest(self) -> tuple[int, int, int]:
        h = self.system.layout
        return (h.current.version, h.ack_min(), h.min_stored)

    def _layout_saved(self) -> None:
        if self._layout_digest() != self._digest:
            self.add_full_sync()

    def _missed_write(self, node: str, parts: set[int]) -> None:
        """A copy of a write did not reach `node`: sync it those partitions after the
        catch-up backoff (or at once when it is seen coming back up)."""
        self.catch_up.missed(node, parts, asyncio.get_running_loop().time())
        self._wake.set()

    def _link_up(self, node: str) -> None:
        """A new link to `node`: it may have restarted faster than _poll_peers (once a
        second) could see it down, missing writes meanwhile. Treated as coming up."""
        if node == self.system.node_id or node not in self.system.layout.all_nodes():
            return
        self._want_next = True
        self.catch_up.came_up(node, asyncio.get_running_loop().time())
        self._wake.set()

    def _poll_peers(self) -> None:
        """A node coming (back) up gets a pass at once, or right after the current one (a
        flapping node must not keep restarting passes): it may have missed writes."""
        me = self.system.node_id
        nodes = set(self.system.layout.all_nodes()) - {me}
        up = {n for n in nodes if self.rpc.is_up(n)}
        if up - self._up:
            self._want_next = True
            now = asyncio.get_running_loop().time()
            for n in up - self._up:
                self.catch_up.came_up(n, now)
            self._wake.set()
        self._up = up

    def _start_pass(self) -> None:
        self._want_full = self._want_next = False
        loop = asyncio.get_running_loop()
        self._next_full = loop.time() + self.interval_s * random.uniform(0.9, 1.1)
        self._digest = self._layout_digest()
        if not self.system.layout_ready():
            self.current = None
            return
        h = self.system.layout
        full = isinstance(self.table.replication, FullCopy)
        version = h.current.version if full else h.ack_min()
        self.current = plan_full_sync(self.system.node_id, version, self._sets_of,
                                      self._has_data, _N)
        log.debug("%s: full sync for layout version %d, %d partitions", self.table.name,
                  version, self.current.total)

    def _sets_of(self, p: int) -> list[list[str]]:
        repl = self.table.replication
        if isinstance(repl, FullCopy):
            # Every node of the layout, gateways included (Garage), keeps a full copy.
            nodes = set(repl.storage_nodes(bytes([p]) + bytes(31)))
            return [sorted(nodes | set(self.system.current_layout.all_nodes()))]
        return self.system.write_sets_of(p)

    def _has_data(self, p: int) -> bool:
        return bool(self.data.db.range(self.data.store, bytes([p]), _end(p), 1))

    # ------------------------------------------------------------ worker

    async def work(self) -> WorkerState:
        loop = asyncio.get_running_loop()
        if self._next_full is None:
            self._next_full = loop.time() + self._startup_delay_s
        self._poll_peers()
        due = self._catch_up_due()
        if due is not None:
            await self._catch_up(*due)
            return WorkerState.BUSY
        idle = self.current is None or not self.current.todo
        if self._want_full or loop.time() >= self._next_full or (self._want_next and idle):
            self._start_pass()
        cur = self.current
        if cur is None:
            return WorkerState.IDLE
        if not cur.todo:  # e.g. a gateway: no partition to sync, done at once
            self._finish(cur)
            return WorkerState.IDLE
        batch = [cur.todo.pop() for _ in range(min(PARTITIONS_PER_STEP, len(cur.todo)))]
        failed = await self._sync_batch([sp for sp in batch if sp.retain])
        for sp in batch:
            if not sp.retain:
                try:
                    await self._offload(sp)
                except (RpcError, QuorumError) as e:
                    log.info("%s: offload of partition %d: %s", self.table.name,
                             sp.partition, e)
                    failed.append(sp)
        if failed:
            cur.todo[0:0] = failed  # tried again after the others
            cur.failed += len(failed)
            self.last_error = f"{len(failed)} partition(s) not synced with a quorum"
            raise SyncFailed(f"{self.table.name}: partitions "
                             f"{sorted(sp.partition for sp in failed)[:8]} not synced "
                             "with a quorum of their nodes; retrying")
        if not cur.todo:
            self._finish(cur)
        return WorkerState.BUSY

    def _finish(self, cur: FullSync) -> None:
        self.passes += 1
        self.last_pass_version = cur.version
        self.last_error = None
        self.current = None
        log.debug("%s: full sync done for layout version %d", self.table.name, cur.version)
        self.hub.table_done(self.table.name, cur.version)

    async def wait_for_work(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._want_full or self._want_next) and (
                self._next_full is None or loop.time() < self._next_full) and \
                self._catch_up_due() is None:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._poll_peers()

    def status(self) -> dict[str, object]:
        cur = self.current
        out: dict[str, object] = {
            "queueLength": len(cur.todo) if cur else 0,
            "progress": (f"{cur.done}/{cur.total} partitions (layout version {cur.version})"
                         if cur else "idle"),
            "fullSyncs": self.passes, "lastSyncedVersion": self.last_pass_version,
            "itemsSent": self.items_sent, "itemsReceived": self.items_received,
            "itemsOffloaded": self.items_offloaded}
        free = [f"full syncs done: {self.passes}" + (
                    f" (last for layout version {self.last_pass_version})"
                    if self.last_pass_version is not None else ""),
                f"entries sent: {self.items_sent}, received: {self.items_received}, "
                f"offloaded: {self.items_offloaded}"]
        if self.last_error:
            out["lastError"] = self.last_error
            free.append(f"last error: {self.last_error}")
        out["freeform"] = free
        return out

    # ------------------------------------------------------------ driver side

    async def _sync_batch(self, batch: list[SyncPartition]) -> list[SyncPartition]:
        """Sync these partitions with their peers; the ones that did not reach a quorum."""
        if not batch:
            return []
        me = self.system.node_id
        mark = self.catch_up.mark()
        # What this node pushes comes from its tree: first the records of writes already
        # made (a pass, or a catch-up, must not miss an entry whose record is pending).
        await self.data.merkle.apply_pending()
        roots = dict(zip((sp.partition for sp in batch),
                         self.data.merkle.roots_of([sp.partition for sp in batch]),
                         strict=True))
        by_peer: dict[str, list[int]] = {}
        for sp in batch:
            for n in peers_of(me, sp):
                by_peer.setdefault(n, []).append(sp.partition)
        peers = sorted(by_peer)
        results = await asyncio.gather(*(self._sync_with(n, by_peer[n], roots)
                                         for n in peers))
        ok_of = dict(zip(peers, results, strict=True))
        now = asyncio.get_running_loop().time()
        for n in peers:
            self.catch_up.synced(n, ok_of[n], mark)
            self.catch_up.missed(n, set(by_peer[n]) - ok_of[n], now)
        quorum = self.table.replication.write_quorum
        return [sp for sp in batch if not partition_synced(
            sp, me, {n for n in peers if sp.partition in ok_of[n]}, quorum)]

    def _catch_up_due(self) -> tuple[str, list[int]] | None:
        return self.catch_up.next_due(asyncio.get_running_loop().time(), self.rpc.is_up,
                                      PARTITIONS_PER_STEP)

    async def _catch_up(self, node: str, parts: list[int]) -> None:
        """Sync with one peer the partitions an earlier pass, or a copy of a write, missed
        on it. Partitions this node does not store (it wrote as a gateway, or for another
        table's hook) are handed to their other owners, which hold the entries."""
        me = self.system.node_id
        shared, foreign, gone = set(), set(), set()
        for p in parts:
            sets = self._sets_of(p)
            if not any(node in s for s in sets):
                gone.add(p)  # no longer that node's partition: nothing to catch up
            elif any(me in s for s in sets):
                shared.add(p)
            else:
                foreign.add(p)
        self.catch_up.synced(node, gone)
        if not shared and not foreign:
            return
        mark = self.catch_up.mark()
        ok: set[int] = set()
        if shared:
            todo = sorted(shared)
            await self.data.merkle.apply_pending()  # as in _sync_batch
            roots = dict(zip(todo, self.data.merkle.roots_of(todo), strict=True))
            ok = await self._sync_with(node, todo, roots)
        if foreign:
            ok |= await self._hand_over(node, foreign)
        self.catch_up.synced(node, ok, mark)
        if (shared | foreign) - ok:
            self.catch_up.failed_again(node, asyncio.get_running_loop().time())
        log.debug("%s: caught up %d of %d partitions with %s", self.table.name, len(ok),
                  len(shared | foreign), node[:16])

    async def _hand_over(self, node: str, parts: set[int]) -> set[int]:
        """Tell the owners of `parts` (up, other than `node`) that `node` missed writes
        there; the partitions every such owner was told of (none if no owner is up)."""
        me = self.system.node_id
        targets: dict[str, set[int]] = {}
        for p in parts:
            for o in {n for s in self._sets_of(p) for n in s} - {node, me}:
                if self.rpc.is_up(o):
                    targets.setdefault(o, set()).add(p)

        async def tell(owner: str, ps: set[int]) -> bool:
            try:
                await self._call(owner, self.p_behind, [node, sorted(ps)])
                return True
            except (RpcError, QuorumError) as e:
                log.debug("%s: hint for %s to %s: %s", self.table.name, node[:16],
                          owner[:16], e)
                return False
        owners = sorted(targets)
        told = await asyncio.gather(*(tell(o, targets[o]) for o in owners))
        done: set[int] = set()
        failed: set[int] = set()
        for o, t in zip(owners, told, strict=True):
            (done if t else failed).update(targets[o])
        return done - failed

    async def _sync_with(self, node: str, parts: list[int],
                         roots: dict[int, bytes]) -> set[int]:
        """Partitions synced with `node` (empty if it is down)."""
        if not self.rpc.is_up(node):
            return set()
        try:
            theirs = await self._call(node, self.p_roots, parts)
            if not isinstance(theirs, list) or len(theirs) != len(parts):
                raise RpcError("invalid answer to a roots request")
        except (RpcError, QuorumError) as e:
            log.debug("%s: roots from %s: %s", self.table.name, node[:16], e)
            return set()
        # Equal roots (or nothing of ours): nothing they lack.
        ok = {p for p, r in zip(parts, theirs, strict=True)
              if roots[p] == merkle.EMPTY_HASH or r == roots[p]}

        async def push(p: int) -> int | None:
            try:
                await self._push_differences(node, p)
                return p
            except (RpcError, QuorumError) as e:
                log.debug("%s: sync of partition %d with %s: %s", self.table.name, p,
                          node[:16], e)
                return None
        # The differing partitions of the batch at once: each descent is a few round trips.
        done = await asyncio.gather(*(push(p) for p in parts if p not in ok))
        return ok | {p for p in done if p is not None}

    async def _push_differences(self, node: str, p: int) -> None:
        """Descend both tries where hashes differ; send our entries there."""
        tm = self.data.merkle
        frontier = [b""]
        keys: list[bytes] = []
        while frontier:
            local = [merkle.decode_node(r) for r in tm.read_raw_nodes(p, frontier)]
            need = [pre for pre, ln in zip(frontier, local, strict=True) if needs_remote(ln)]
            remote: dict[bytes, merkle.Node] = {}
            for i in range(0, len(need), MAX_PREFIXES):
                chunk = need[i:i + MAX_PREFIXES]
                remote.update(zip(chunk, await self._remote_nodes(node, p, chunk),
                                  strict=True))
            nxt: list[bytes] = []
            for pre, ln in zip(frontier, local, strict=True):
                step = plan_step(ln, remote.get(pre), pre)
                if step.send_key is not None:
                    keys.append(step.send_key)
                elif step.send_all:
                    keys.extend(self._local_keys(p, pre))
                nxt.extend(step.descend)
                if len(keys) >= MAX_ITEMS:
                    await self._send_keys(node, keys)
                    keys = []
            frontier = nxt
        if keys:
            await self._send_keys(node, keys)

    async def _remote_nodes(self, node: str, p: int, prefixes: list[bytes]
                            ) -> list[merkle.Node]:
        raw = await self._call(node, self.p_nodes, {"p": p, "pre": prefixes})
        if not isinstance(raw, list) or len(raw) != len(prefixes):
            raise RpcError("invalid answer to a Merkle node request")
        try:
            return [merkle.decode_node(r if isinstance(r, bytes) or r is None
                                       else b"\xff") for r in raw]
        except (ValueError, IndexError):
            raise RpcError("invalid Merkle node in an answer") from None

    def _local_keys(self, p: int, prefix: bytes) -> list[bytes]:
        if not prefix:  # the whole partition: a range scan beats walking the trie
            return [k for k, _v in self.data.db.range(self.data.store, bytes([p]), _end(p))]
        return [lf.key for lf in merkle.leaves(self.data.merkle.lookup(p), prefix)]

    async def _send_keys(self, node: str, keys: list[bytes]) -> None:
        """Send the current values of these entries (read a batch at a time: a whole
        partition may be due to a node that has none of it)."""
        store = self.data.store
        sent = 0
        for i in range(0, len(keys), MAX_ITEMS):
            chunk = keys[i:i + MAX_ITEMS]
            items = self.data.db.read(functools.partial(_values, store=store, keys=chunk))
            for batch in batch_by_size(items, MAX_ITEMS, MAX_BATCH_BYTES):
                await self._call(node, self.p_items, batch)
                self.items_sent += len(batch)
                sent += len(batch)
        if sent:
            log.info("%s: sent %d entries to %s", self.table.name, sent, node[:16])

    async def _call(self, node: str, path: str, body: Any) -> Any:
        return await self.rpc.call_body(node, path, body, prio=PRIO_BACKGROUND,
                                        timeout_s=RPC_TIMEOUT_S)

    # ------------------------------------------------------------ offload

    async def _offload(self, sp: SyncPartition) -> None:
        """Push every local entry of a partition this node no longer stores to its owners
        (a write quorum in each set), then delete the ones that did not change meanwhile."""
        p, me = sp.partition, self.system.node_id
        quorum = self.table.replication.write_quorum
        while True:
            sets = self._sets_of(p)
            if not sets or any(me in s for s in sets):
                return  # the layout changed: ours again (or not known), nothing to move
            rows = self.data.db.range(self.data.store, bytes([p]), _end(p), 256)
            if not rows:
                return
            for batch in batch_by_size([v for _k, v in rows], MAX_ITEMS, MAX_BATCH_BYTES):
                await self.rpc.try_write_many_sets(
                    sets, self.p_items, batch, quorum, prio=PRIO_BACKGROUND,
                    timeout_s=RPC_TIMEOUT_S, what=f"offload of {self.table.name}")
            removed = await self.data.db.write(functools.partial(self._remove_tx, rows=rows))
            self.items_offloaded += removed
            log.info("%s: offloaded %d entries of partition %d", self.table.name, removed, p)
            if removed == 0:
                return  # every entry changed meanwhile: the next pass tries again

    def _remove_tx(self, tx: Transaction, rows: list[tuple[bytes, bytes]]) -> int:
        n = 0
        for _k, raw in rows:
            e = self.table.schema.decode(raw)
            if self.data.remove_entry_tx(tx, e.partition_key(), e.sort_key(), raw):
                n += 1
        return n

    # ------------------------------------------------------------ receiver side

    async def _h_roots(self, req: IncomingRequest) -> Any:
        return self.data.merkle.roots_of(check_partitions(req.body))

    async def _h_nodes(self, req: IncomingRequest) -> Any:
        p, prefixes = check_node_request(req.body)
        return self.data.merkle.read_raw_nodes(p, prefixes)

    async def _h_behind(self, req: IncomingRequest) -> Any:
        node, parts = check_behind(req.body)
        me = self.system.node_id
        if node != me and node in self.system.layout.all_nodes():
            mine = {p for p in parts if self._both_store(p, me, node)}
            if mine:
                self._missed_write(node, mine)
        return None

    def _both_store(self, p: int, a: str, b: str) -> bool:
        sets = self._sets_of(p)
        return any(a in s for s in sets) and any(b in s for s in sets)

    async def _h_items(self, req: IncomingRequest) -> Any:
        entries = [self.decode_item(raw) for raw in check_items(req.body)]
        if not entries:
            return None
        data = self.data
        try:
            await data.db.write(lambda tx: [data.update_entry_tx(tx, e) for e in entries])
        except Exception as e:  # an entry that decodes but cannot merge: refuse the batch
            log.warning("%s: entries from %s refused: %s", self.table.name,
                        req.peer.hex()[:16], type(e).__name__)
            raise RpcError(f"entries refused: {type(e).__name__}") from None
        self.items_received += len(entries)
        return None

    def decode_item(self, raw: bytes) -> Any:
        """An entry from another node, only if it decodes, has keys and encodes back (its
        merge is then checked by the write itself)."""
        schema = self.table.schema
        try:
            e = schema.decode(raw)
            pk, sk = e.partition_key(), e.sort_key()
            ok = isinstance(pk, bytes) and isinstance(sk, bytes) and \
                isinstance(e.encode(), bytes)
        except Exception:  # whatever a malformed encoding makes the decoder raise
            ok = False
        if not ok:
            raise RpcError(f"invalid {self.table.name} entry")
        return e


def _values(tx: Transaction, store: str, keys: list[bytes]) -> list[bytes]:
    """The stored values of these keys (absent ones left out)."""
    return [v for v in (tx.get(store, k) for k in keys) if v is not None]


def _end(p: int) -> bytes | None:
    return bytes([p + 1]) if p < _N - 1 else None


class HasSyncers(Protocol):
    table_syncers: list[TableSyncer]


async def repair_tables(g: HasSyncers) -> None:
    """`garage repair tables`: a full sync of every table, starting now; returns at once
    (progress: each sync worker's status)."""
    for s in g.table_syncers:
        s.add_full_sync()
