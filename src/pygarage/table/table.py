"""Table[E]: quorum reads and writes of CRDT entries on the nodes that own them.

Writes go to every node of the entry's write sets (the partition's nodes in each live
layout version: table/replication.py), one call per node carrying all of its entries, and
are acknowledged once each set has the write quorum. This node's share is merged by
TableData directly; the others through the RPC endpoint `table/<name>` (table/rpc.py).
Reads ask the read set at the read quorum, merge the answers as CRDTs and send the merge,
in the background, to the replicas that answered something else (read repair).
Listings with a filter filter that merge, never each replica's own view, in rounds of
bounded answers until the page is full (see table/quorum.py): a replica that missed a
deletion cannot bring the key back.

When this node alone owns an entry (a single node, or full-copy reads), reads and writes
go straight to TableData: no RPC, no task, no extra cost.

Client writes run the table's write check on each owner (e.g. the object table refuses
writes into a deleted bucket); a refusal comes back as a structured answer and is raised
to the writer as the same error (`refusals` maps its code to the error class) if it
arrives before the write quorum did. Inserts from queues, read repairs and sync are never
checked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic

from ..db.base import Db, Transaction
from ..net.conn import PRIO_BACKGROUND, PRIO_NORMAL
from ..net.peer import IncomingRequest, RpcError
from ..rpc.system import System
from ..rpc.write_quorum import SetQuorum, wait_quorum
from ..util.errors import LayoutNotReady, QuorumError
from ..util.ids import partition_hash
from ..util.logsafe import logsafe
from . import rpc as msg
from .data import TableData, tree_key
from .quorum import RangeRound, check_range_keys, merge_get, merge_range, plan_writes
from .replication import Replication
from .schema import E, TableSchema

if TYPE_CHECKING:
    from ..rpc.rpc_helper import RpcHelper

log = logging.getLogger(__name__)

# Range reads up to this many entries stay on the event loop (a thread hop costs more).
_INLINE_READ = 64
# Entries a replica may answer beyond those a listing round wants: deletions and entries
# that fail the filter, so a run of them costs rounds of bounded size, not one huge answer.
_SCAN_EXTRA = 1000


class Table(Generic[E]):
    def __init__(self, system: System, db: Db, schema: TableSchema[E], replication: Replication,
                 rpc: RpcHelper | None = None):
        self.system = system
        self.schema = schema
        self.replication = replication
        self.data: TableData[E] = TableData(db, schema)
        self.rpc = rpc
        self.path = f"table/{schema.name}"
        # Errors the write check may raise, by code: they travel back to the writer.
        self.refusals: dict[str, type[Exception]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # Told of each copy of a write that failed on a node (node, partitions): the sync
        # worker sends that node those partitions soon, not at the next full pass. A node
        # restarted between two polls of its state would otherwise wait ten minutes.
        self.on_missed_write: Callable[[str, set[int]], None] | None = None
        if rpc is not None:
            rpc.register(self.path, self._handle)

    @property
    def name(self) -> str:
        return self.schema.name

    # -- ownership
    def _write_sets(self, pk: bytes) -> list[list[str]]:
        sets = self.replication.write_sets(partition_hash(pk))
        if not sets:
            raise LayoutNotReady()
        return sets

    def owned_locally(self, pk: bytes) -> bool:
        """True when this node alone stores `pk` (in every live layout version)."""
        return self._write_sets(pk) == [[self.system.node_id]]

    def check_local_write(self, pk: bytes) -> None:
        """For a transaction over several tables at once (only possible while every owner
        is this node): raise QuorumError unless this node alone owns `pk`."""
        if not self.owned_locally(pk):
            raise QuorumError(f"{self.name}: other nodes own this data: a local transaction "
                              "cannot write it")

    # -- writes
    async def insert(self, entry: E) -> None:
        await self.insert_many([entry])

    async def insert_many(self, entries: Iterable[E], *, checked: bool = True,
                          prio: int = PRIO_NORMAL) -> None:
        """Write entries to their owners at write quorum. `checked`: run the table's write
        check (client writes); queues and repairs ship unchecked."""
        batch = list(entries)
        if not batch:
            return
        me = [self.system.node_id]
        sets_per_entry = [self._write_sets(e.partition_key()) for e in batch]
        if all(len(s) == 1 and s[0] == me for s in sets_per_entry):
            await self._write_local(batch, checked)
            return
        await self._write_replicated(batch, sets_per_entry, checked, prio)

    async def _write_local(self, entries: list[E], checked: bool) -> None:
        """Every entry in one write transaction of the db's writer thread (one per entry
        with a write check: see TableData.write_entries)."""
        if checked:
            await self.data.write_entries(entries)
        else:
            await self.data.db.write(lambda tx: self._merge_all(tx, entries))

    def _merge_all(self, tx: Transaction, entries: list[E]) -> None:
        for e in entries:
            self.data.update_entry_tx(tx, e)

    async def _write_replicated(self, batch: list[E], sets_per_entry: list[list[list[str]]],
                                checked: bool, prio: int) -> None:
        plan = plan_writes(sets_per_entry)
        q = SetQuorum((s for sets in plan.entry_sets for s in sets),
                      self.replication.write_quorum)
        q.check_possible(f"{self.name} write")
        me = self.system.node_id
        encoded: list[bytes] | None = None
        calls: dict[str, asyncio.Task[None]] = {}
        for node, idx in plan.per_node.items():
            if node == me:
                coro = self._write_local([batch[i] for i in idx], checked)
            else:
                if encoded is None:
                    encoded = [e.encode() for e in batch]
                coro = self._write_remote(node, [encoded[i] for i in idx], checked, prio)
            calls[node] = asyncio.ensure_future(coro)
        try:
            # A refusal by the owners' write check is the writer's error, not a failure.
            await wait_quorum(calls, q, self.name, fatal=tuple(self.refusals.values()))
        finally:
            # Copies still in flight complete in the background (they are wanted); every
            # outcome not looked at yet is, so none is reported as never retrieved.
            for node, t in calls.items():
                t.add_done_callback(self._late(node, [batch[i] for i in plan.per_node[node]]))

    async def _write_remote(self, node: str, raws: list[bytes], checked: bool,
                            prio: int) -> None:
        reply = await self._rpc().call_body(node, self.path, msg.update_msg(checked, raws),
                                         prio=prio)
        try:
            refused = msg.parse_update_reply(reply)
        except msg.BadRequest as e:
            raise RpcError(str(e)) from None
        if refused is not None:
            code, text = refused
            cls = self.refusals.get(code)
            if cls is None:
                raise RpcError(f"write refused ({code[:64]}): {text[:200]}")
            raise cls(text)

    def _late(self, node: str, entries: list[E]) -> Any:
        def cb(t: asyncio.Future[Any]) -> None:
            if t.cancelled():
                return
            e = t.exception()
            if e is None or isinstance(e, tuple(self.refusals.values())):
                return  # applied, or refused by the owner's check: nothing to catch up
            log.debug("%s: write on node %s failed: %s", self.name, node[:16], e)
            if self.on_missed_write is not None and node != self.system.node_id and entries:
                self.on_missed_write(node, {partition_hash(x.partition_key())[0]
                                            for x in entries})
        return cb

    # -- reads
    def _read_set(self, pk: bytes) -> list[str]:
        nodes = self.replication.read_nodes(partition_hash(pk))
        if not nodes:
            raise LayoutNotReady()
        return nodes

    def _local_read(self, nodes: list[str]) -> bool:
        return len(nodes) == 1 and nodes[0] == self.system.node_id

    def _rpc(self) -> RpcHelper:
        if self.rpc is None:
            raise QuorumError(f"{self.name}: other nodes own this data and this table has "
                              "no RPC")
        return self.rpc

    async def get(self, pk: bytes, sk: bytes = b"") -> E | None:
        nodes = self._read_set(pk)
        if self._local_read(nodes):
            return self.data.read_entry(pk, sk)
        answers = _Answers(self.schema, pk, sk)

        def check(reply: Any) -> bytes | None:
            raw = msg.parse_get_reply(reply)
            if raw is not None:
                answers.entry(raw)  # undecodable, or of another key: that node failed
            return raw
        replies = await self._rpc().try_call_many(
            nodes, self.path, msg.get_msg(pk, sk), self.replication.read_quorum,
            what=f"{self.name} read", check=check)
        merged, enc, stale = merge_get(replies, answers.entry)
        if stale and enc is not None:
            # Replicas disagree: the stale ones and those not asked get the merge.
            answered = {n for n, _ in replies}
            self._repair({n: [enc] for n in stale + [n for n in nodes if n not in answered]})
        return merged

    async def get_range(self, pk: bytes, start_sk: bytes | None = None, filter: Any = None,
                        limit: int = 1000, reverse: bool = False,
                        end_sk: bytes | None = None) -> list[E]:
        nodes = self._read_set(pk)
        if self._local_read(nodes):
            if limit <= _INLINE_READ:
                return self.data.read_range(pk, start_sk, filter, limit, reverse, end_sk)
            # A listing page reads and decodes up to `limit` entries (more with a filter):
            # off the event loop.
            return await asyncio.to_thread(self.data.read_range, pk, start_sk, filter, limit,
                                           reverse, end_sk)
        if not 0 < limit <= msg.MAX_LIMIT:
            raise ValueError(f"get_range: limit must be in 1..{msg.MAX_LIMIT}")
        # Rounds until the page is full or the quorum reached the end (table/quorum.py):
        # each replica answers deletions too, at most `_SCAN_EXTRA` beyond what is wanted.
        out: list[E] = []
        start, end = start_sk, end_sk
        while True:
            want = limit - len(out)
            r = await self._range_round(nodes, pk, start, end, filter, want, reverse)
            if r.repairs:
                self._repair(r.repairs)
            out += r.out
            if len(out) >= limit or r.after is None:
                return out
            if reverse:
                end = r.after  # exclusive upper bound
            else:
                start = r.after + b"\x00"

    async def _range_round(self, nodes: list[str], pk: bytes, start: bytes | None,
                           end: bytes | None, filter: Any, want: int, reverse: bool
                           ) -> RangeRound[E]:
        scan = want + _SCAN_EXTRA
        body = msg.range_msg(pk, start, end, filter, want, reverse, scan)
        answers = _Answers(self.schema, pk, None)

        def check(reply: Any) -> tuple[list[bytes], bool]:
            a = msg.parse_range_reply(reply, scan)
            check_range_keys([answers.entry(raw).sort_key() for raw in a.entries], start,
                             end, reverse)
            return a.entries, a.more
        replies = await self._rpc().try_call_many(
            nodes, self.path, body, self.replication.read_quorum, what=f"{self.name} list",
            check=check)
        return merge_range([(n, raws, more) for n, (raws, more) in replies], answers.entry,
                           lambda e: self.schema.matches_filter(e, filter), want, reverse)

    async def get_all_local(self, limit: int = 100_000) -> list[E]:
        """Every entry stored on this node (for full-copy tables: the whole table)."""
        def scan() -> list[E]:
            rows = self.data.db.range(self.data.store, None, None, limit)
            return [self.schema.decode(v) for _, v in rows]
        return await asyncio.to_thread(scan)

    # -- read repair
    def _repair(self, per_node: dict[str, list[bytes]]) -> None:
        """Send merged entries to the replicas that lacked them, in the background."""
        rpc = self.rpc
        if rpc is None:
            return
        for node, raws in per_node.items():
            # A listing round may repair more entries than one update call carries.
            for i in range(0, len(raws), msg.MAX_ENTRIES):
                t = asyncio.ensure_future(rpc.call_body(
                    node, self.path, msg.update_msg(False, raws[i:i + msg.MAX_ENTRIES]),
                    prio=PRIO_BACKGROUND))
                self._background.add(t)
                t.add_done_callback(self._background.discard)
                # The entry stays at quorum on the others: no catch-up hint needed.
                t.add_done_callback(self._late(node, []))

    # -- the endpoint other nodes call
    async def _handle(self, req: IncomingRequest) -> Any:
        try:
            r = msg.parse_request(req.body)
        except msg.BadRequest as e:
            raise RpcError(f"{self.path}: {e}") from None
        if isinstance(r, msg.Get):
            return self.data.db.get(self.data.store, tree_key(r.pk, r.sk))
        if isinstance(r, msg.Range):
            return await self._scan(r)
        try:
            entries = [self.schema.decode(raw) for raw in r.entries]
        except Exception:  # hostile or corrupt bytes: decoders raise many kinds of errors
            raise RpcError(f"{self.path}: an entry cannot be decoded") from None
        try:
            await self._write_local(entries, r.checked)
        except tuple(self.refusals.values()) as e:
            code = next(c for c, cls in self.refusals.items() if isinstance(e, cls))
            return msg.refused_msg(code, str(e))
        except Exception as e:  # e.g. an entry that decodes but cannot merge: not ours
            log.warning("%s: update from node %s not applied: %s", self.path,
                        req.peer.hex()[:16], logsafe(f"{type(e).__name__}: {e}"))
            raise RpcError(f"{self.path}: update not applied") from None
        return None


    async def _scan(self, r: msg.Range) -> list[Any]:
        """A range answer: a short scan stays on the event loop; what goes beyond
        _INLINE_READ entries continues in a thread (delete markers in a row)."""
        raws: list[bytes] = []
        matched = 0
        more = True
        start, end = r.start_sk, r.end_sk
        if r.limit <= _INLINE_READ:
            raws, matched, more = self.data.scan_range_raw(
                r.pk, start, end, r.filter, r.limit, min(r.scan, r.limit + _INLINE_READ),
                r.reverse)
            if not more or matched >= r.limit or len(raws) >= r.scan:
                return msg.range_reply(raws, more)
            last = self.schema.decode(raws[-1]).sort_key()
            if r.reverse:
                end = last
            else:
                start = last + b"\x00"
        rest, _, more = await asyncio.to_thread(
            self.data.scan_range_raw, r.pk, start, end, r.filter, r.limit - matched,
            r.scan - len(raws), r.reverse)
        return msg.range_reply(raws + rest, more)


class _Answers(Generic[E]):
    """The entries of one read's answers, each decoded once (by the quorum call's check,
    so an answer that is undecodable or of another key counts as that node's failure)."""

    def __init__(self, schema: TableSchema[E], pk: bytes, sk: bytes | None):
        self.schema, self.pk, self.sk = schema, pk, sk
        self.cache: dict[bytes, E] = {}

    def entry(self, raw: bytes) -> E:
        e = self.cache.get(raw)
        if e is None:
            e = self.schema.decode(raw)
            if e.partition_key() != self.pk or (self.sk is not None
                                                and e.sort_key() != self.sk):
                raise ValueError("an entry of another key")
            self.cache[raw] = e
        return e
