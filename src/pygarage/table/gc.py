"""Tombstone GC (Garage's table/gc.rs behaviour): deleted entries are dropped for good once
every replica holds the tombstone and a delay has passed.

A write that leaves a tombstone (the schema's is_tombstone) records it, in the same
transaction, in the table's gc-todo tree: key = 8-byte timestamp + table key, value = hash
of the tombstone's encoding. Every storage node records it, but only the partition's first
storage node at GC time (its leader) does the work, so nodes do not redo each other's; the
others look again a delay later (by then the leader collected it, or has changed, as after
a layout change). After the delay (24 h), the leader, for the entries still stored as that
tombstone:
  1. pushes them to every other storage node of the partition (in every live layout
     version) and needs every one to acknowledge: a node that missed the deletion must
     not keep an older value that sync would bring back once the tombstone is gone;
  2. asks all of them to delete the entry if it is still that tombstone (by hash: a newer
     value written meanwhile wins and stays);
  3. deletes it locally under the same condition. The Merkle tree follows (same
     transaction), so sync sees the entry gone on every replica alike.
Any node down or refusing: nothing is deleted, the worker tries again later (those
tombstones go behind the others due, so one dead node does not hold back every partition).
A copy of an older value still in flight when GC ran is recognised and dropped for 10 min
(RecentTombstones).

Endpoint: table/<name>/gc/delete  [[table key, value hash], ...] -> None.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..db.base import Transaction
from ..db.writer import after_commit
from ..net.conn import PRIO_BACKGROUND
from ..net.peer import IncomingRequest, RpcError
from ..rpc.rpc_helper import RpcHelper
from ..rpc.system import System
from ..util.background import WorkerState
from ..util.clock import Clock
from ..util.errors import QuorumError
from .merkle import HASH_LEN, value_hash
from .sync import MAX_BATCH_BYTES, MAX_ITEMS, RPC_TIMEOUT_S, TableSyncer
from .sync_plan import batch_by_size
from .table import Table

log = logging.getLogger(__name__)

GC_DELAY_MS = 24 * 3600 * 1000  # Garage's TABLE_GC_DELAY
BATCH = 1024  # tombstones per round (Garage's TABLE_GC_BATCH_SIZE)
IDLE_S = 60.0  # nothing due, or a round failed: look again after this
MAX_KEY_LEN = 4096
RECENT_GRACE_MS = 10 * 60 * 1000  # far beyond a sync call's 30 s timeout
RECENT_MAX = 100_000


# ---------------------------------------------------------------- todo bookkeeping (pure)

def todo_key(ts_msec: int, key: bytes) -> bytes:
    return ts_msec.to_bytes(8, "big") + key


@dataclass(frozen=True)
class Todo:
    raw_key: bytes  # the todo tree's key
    ts: int  # when the tombstone was written (msec)
    key: bytes  # the table key
    vhash: bytes  # hash of the tombstone's encoding

    @staticmethod
    def parse(k: bytes, v: bytes) -> Todo:
        return Todo(k, int.from_bytes(k[:8], "big"), k[8:], v)


def due_todos(rows: Sequence[tuple[bytes, bytes]], now: int, delay_ms: int
              ) -> tuple[list[Todo], int | None]:
    """The todos whose delay has passed (the tree is in time order, so they come first),
    and when the next one is due (msec) if none is."""
    out: list[Todo] = []
    for k, v in rows:
        t = Todo.parse(k, v)
        if t.ts + delay_ms > now:
            return out, (None if out else t.ts + delay_ms)
        out.append(t)
    return out, None


def group_by_nodes(todos: Sequence[Todo], nodes_of: Any, me: str
                   ) -> dict[tuple[str, ...], list[Todo]]:
    """Tombstones per set of other nodes storing them (one push and one delete per set)."""
    out: dict[tuple[str, ...], list[Todo]] = {}
    for t in todos:
        nodes = tuple(sorted(set(nodes_of(t.key[0])) - {me}))
        out.setdefault(nodes, []).append(t)
    return out


def check_deletes(body: Any) -> list[tuple[bytes, bytes]]:
    if not isinstance(body, list) or len(body) > MAX_ITEMS:
        raise RpcError(f"expected at most {MAX_ITEMS} [key, hash] pairs")
    out = []
    for it in body:
        if not (isinstance(it, list) and len(it) == 2 and isinstance(it[0], bytes)
                and 0 < len(it[0]) <= MAX_KEY_LEN and isinstance(it[1], bytes)
                and len(it[1]) == HASH_LEN):
            raise RpcError("expected [table key, 32-byte hash] pairs")
        out.append((it[0], it[1]))
    return out


class RecentTombstones:
    """Tombstones this node collected lately, by table key, bounded and expiring. A copy of
    an older value still in flight when GC ran (a sync push read just before the tombstone
    reached its sender) would otherwise bring the entry back: it is recognised by merging
    it into the collected tombstone, which it does not change."""

    def __init__(self, grace_ms: int = RECENT_GRACE_MS, max_entries: int = RECENT_MAX):
        self.grace_ms = grace_ms
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()

    def add(self, key: bytes, raw: bytes, now: int) -> None:
        self._items[key] = (now, raw)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def get(self, key: bytes, now: int) -> bytes | None:
        it = self._items.get(key)
        if it is None:
            return None
        if now - it[0] > self.grace_ms:
            self._items.pop(key, None)
            return None
        return it[1]

    def __len__(self) -> int:
        return len(self._items)


# ---------------------------------------------------------------- worker

class TableGc:
    def __init__(self, system: System, rpc: RpcHelper, table: Table[Any],
                 syncer: TableSyncer, *, delay_ms: int = GC_DELAY_MS,
                 clock: Clock | None = None):
        self.system = system
        self.rpc = rpc
        self.table = table
        self.data = table.data
        self.syncer = syncer  # its items endpoint carries the tombstones (step 1)
        self.name = f"{table.name} GC"
        self.delay_ms = delay_ms
        self.clock = clock or system.clock
        self.todo_tree = f"{table.name}:gc_todo"
        self.data.db.open_tree(self.todo_tree)
        self.data.on_tombstone = self._record_tx
        self.recent = RecentTombstones()
        self.data.outdated = self._outdated
        self.p_delete = f"table/{table.name}/gc/delete"
        rpc.register(self.p_delete, self._h_delete)
        self.retry_s = IDLE_S
        self._wait_s = 0.0
        self._wake = asyncio.Event()
        self._empty = False  # the worker found nothing to do: a new tombstone wakes it
        self.collected = 0
        self.last_error: str | None = None

    def _nodes_of(self, partition: int) -> list[str]:
        return self.system.layout.storage_nodes_of(partition)

    def _record_tx(self, tx: Transaction, key: bytes, raw: bytes) -> None:
        nodes = self._nodes_of(key[0])
        if nodes and self.system.node_id not in nodes:
            return  # passing through (offload): not ours to collect
        tx.insert(self.todo_tree, todo_key(self.clock.now_msec(), key), value_hash(raw))
        if self._empty:
            after_commit(self._wake.set)

    def todo_len(self) -> int:
        return self.data.db.tree_len(self.todo_tree)

    # -- worker protocol
    async def work(self) -> WorkerState:
        if not self.system.layout_ready():
            # Who else stores the tombstones is not known yet: look again later, or when
            # a tombstone is written (by then there is a layout).
            self._empty = True
            self._wait_s = self.retry_s
            return WorkerState.IDLE
        rows = self.data.db.range(self.todo_tree, None, None, 2 * BATCH)
        now = self.clock.now_msec()
        todos, next_due = due_todos(rows, now, self.delay_ms)
        if not todos:
            self._empty = next_due is None
            self._wait_s = self.retry_s if next_due is None else min(
                self.retry_s, (next_due - now) / 1000)
            return WorkerState.IDLE
        self._empty = False
        store = self.data.store
        values = self.data.db.read(lambda tx: [tx.get(store, t.key) for t in todos])
        live: list[tuple[Todo, bytes]] = []
        stale: list[Todo] = []
        for t, raw in zip(todos, values, strict=True):
            if raw is not None and value_hash(raw) == t.vhash:
                live.append((t, raw))
            else:
                stale.append(t)  # no longer that tombstone: a newer value won
            if len(live) >= BATCH:
                break
        me = self.system.node_id
        others = [t for t, _raw in live if (self._nodes_of(t.key[0]) or [me])[0] != me]
        live = [(t, raw) for t, raw in live if (self._nodes_of(t.key[0]) or [me])[0] == me]
        if stale or others:
            # Another node leads these: look again a delay later (collected by then).
            later = now + max(0, int(self.retry_s * 1000) - self.delay_ms)
            await self.data.db.write(functools.partial(
                self._requeue_tx, todos=others, ts=later, drop=stale))
        errors = []
        groups = group_by_nodes([t for t, _ in live], self._nodes_of, me)
        raws = {t.raw_key: raw for t, raw in live}
        for nodes, group in groups.items():
            try:
                await self._collect(list(nodes), [(t, raws[t.raw_key]) for t in group])
            except (RpcError, QuorumError) as e:
                errors.append(str(e))
                # Due again after the retry delay, behind the others due now.
                again = now - self.delay_ms + int(self.retry_s * 1000)
                await self.data.db.write(functools.partial(
                    self._requeue_tx, todos=group, ts=again))
        if errors:
            self.last_error = errors[0]
            log.info("%s: tombstones kept for now (a storage node did not answer): %s",
                     self.table.name, errors[0])
            self._wait_s = self.retry_s
            return WorkerState.IDLE
        self.last_error = None
        return WorkerState.BUSY

    async def _collect(self, nodes: list[str], items: list[tuple[Todo, bytes]]) -> None:
        if nodes:
            # 1. every storage node holds (at least) the tombstone
            for batch in batch_by_size([raw for _t, raw in items], MAX_ITEMS, MAX_BATCH_BYTES):
                await self.rpc.try_call_many(nodes, self.syncer.p_items, batch, len(nodes),
                                             send_all=True, prio=PRIO_BACKGROUND,
                                             timeout_s=RPC_TIMEOUT_S, what="GC: tombstones")
            # 2. every one deletes it if that is still what it holds
            pairs = [[t.key, t.vhash] for t, _raw in items]
            for i in range(0, len(pairs), MAX_ITEMS):
                await self.rpc.try_call_many(nodes, self.p_delete, pairs[i:i + MAX_ITEMS],
                                             len(nodes), send_all=True, prio=PRIO_BACKGROUND,
                                             timeout_s=RPC_TIMEOUT_S, what="GC: deletions")
        # 3. here too
        todos = [t for t, _raw in items]
        n = await self.data.db.write(lambda tx: self._delete_tx(tx, todos))
        self.collected += n
        log.debug("%s: %d tombstones collected", self.table.name, n)

    def _delete_tx(self, tx: Transaction, todos: list[Todo]) -> int:
        n = sum(1 for t in todos if self._delete_if_hash_tx(tx, t.key, t.vhash))
        self._drop_todos_tx(tx, todos)
        return n

    def _requeue_tx(self, tx: Transaction, todos: list[Todo], ts: int,
                    drop: list[Todo] | None = None) -> None:
        """Move these todos to time ts (if unchanged); drop those of `drop`."""
        self._drop_todos_tx(tx, drop or [])
        for t in todos:
            if tx.get(self.todo_tree, t.raw_key) == t.vhash:
                tx.remove(self.todo_tree, t.raw_key)
                tx.insert(self.todo_tree, todo_key(max(ts, t.ts), t.key), t.vhash)

    def _drop_todos_tx(self, tx: Transaction, todos: list[Todo]) -> None:
        for t in todos:
            if tx.get(self.todo_tree, t.raw_key) == t.vhash:
                tx.remove(self.todo_tree, t.raw_key)

    def _delete_if_hash_tx(self, tx: Transaction, key: bytes, vhash: bytes) -> bool:
        raw = tx.get(self.data.store, key)
        if raw is None or value_hash(raw) != vhash:
            return False
        e = self.table.schema.decode(raw)
        if not self.data.remove_entry_tx(tx, e.partition_key(), e.sort_key(), raw):
            return False
        self.recent.add(key, raw, self.clock.now_msec())
        return True

    def _outdated(self, key: bytes, entry: Any) -> bool:
        if not self.recent:
            return False
        tomb = self.recent.get(key, self.clock.now_msec())
        if tomb is None:
            return False
        t = self.table.schema.decode(tomb)
        t.merge(entry)
        return bool(t.encode() == tomb)

    def wake(self) -> None:
        """Look at the todo list now (a test changed the delay, or a node is back)."""
        self._wake.set()

    async def wait_for_work(self) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, self._wait_s))
        except TimeoutError:
            pass

    def status(self) -> dict[str, object]:
        out: dict[str, object] = {"queueLength": self.todo_len(),
                                  "progress": f"{self.collected} tombstones collected"}
        free = [f"tombstones are collected {self.delay_ms / 3_600_000:g} h after deletion"]
        if self.last_error:
            out["lastError"] = self.last_error
            free.append(f"last error: {self.last_error}")
        out["freeform"] = free
        return out

    # -- receiver side
    async def _h_delete(self, req: IncomingRequest) -> Any:
        pairs = check_deletes(req.body)
        if pairs:
            await self.data.db.write(
                lambda tx: [self._delete_if_hash_tx(tx, k, h) for k, h in pairs])
        return None
