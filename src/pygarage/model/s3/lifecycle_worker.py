"""The daily lifecycle pass: once per UTC day, walk the objects stored on this node and apply
their bucket's lifecycle rules (model/lifecycle.py): expired objects get a delete marker and
incomplete uploads are marked aborted, the same writes DeleteObject and
AbortMultipartUpload make, so the table hooks free versions, parts and blocks as usual.

The day of the last completed pass is kept in the metadata db: a restart the same day does
not run it again, a node that was down at midnight runs it when it comes back. Time comes
from the injected clock (tests shift it by days instead of waiting).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from ...db.base import prefix_end
from ...util.background import BgVars, VarError, WorkerState
from ...util.clock import SYSTEM_CLOCK, Clock, next_timestamp
from ...util.ids import gen_uuid, partition_hash
from ..bucket_table import Bucket
from ..lifecycle import LifecycleRule, aborts, day_of, expires, midnight_ms, stored_rules
from .object_table import ABORTED, COMPLETE, DELETE_MARKER, UPLOADING, Object, ObjectVersion

if TYPE_CHECKING:
    from ..garage import Garage

log = logging.getLogger(__name__)

STATE_TREE = "lifecycle_worker"
LAST_COMPLETED = b"last_completed"
BATCH = 100
MAX_SLEEP_S = 3600.0  # re-read the clock at least hourly while waiting for midnight


@dataclass
class _Pass:
    day: date
    pos: bytes | None = None      # next object table key to look at
    seen: int = 0
    expired: int = 0
    aborted: int = 0
    bucket: Bucket | None = None  # cache: objects come grouped by bucket
    rules: list[LifecycleRule] = field(default_factory=list)


def seconds_until_next_pass(last_completed: date, now_ms: int) -> float:
    """(pure) How long to wait, from now_ms, for the day after last_completed to begin."""
    return max(0.0, (midnight_ms(last_completed + timedelta(days=1)) - now_ms) / 1000)


class LifecycleWorker:
    name = "object lifecycle worker"

    def __init__(self, garage: Garage, clock: Clock = SYSTEM_CLOCK):
        self.g = garage
        self.clock = clock
        garage.db.open_tree(STATE_TREE)
        raw = garage.db.get(STATE_TREE, LAST_COMPLETED)
        self.last_completed: date | None = date.fromisoformat(raw.decode()) if raw else None
        self.last_pass: _Pass | None = None
        self.running: _Pass | None = None
        if self.last_completed is None or self.last_completed < self._today():
            self.running = _Pass(self._today())
        self._wake = asyncio.Event()

    def register_vars(self, bg_vars: BgVars) -> None:
        bg_vars.register("lifecycle-last-completed",
                         lambda: self.last_completed or "never", self._set_last_completed)

    async def _set_last_completed(self, value: str) -> None:
        """An earlier day makes the next pass run now; a later one postpones it."""
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise VarError(f"invalid value for lifecycle-last-completed: {value!r} (a date, "
                           "e.g. 2026-01-31)") from None
        await self.g.db.write_insert(STATE_TREE, LAST_COMPLETED, day.isoformat().encode())
        self.last_completed = day
        self._wake.set()

    def _today(self) -> date:
        return day_of(self.clock.now_msec())

    async def work(self) -> WorkerState:
        p = self.running
        if p is None:
            return WorkerState.IDLE
        store = self.g.object_table.data.store
        rows = self.g.db.range(store, p.pos, None, BATCH)
        if not rows:
            await self._finish(p)
            return WorkerState.IDLE
        for k, v in rows:
            obj = self.g.object_table.data.schema.decode(v)
            p.seen += 1
            if not await self._process(p, obj):
                # No rules for this bucket: jump past all its objects.
                p.pos = prefix_end(partition_hash(obj.bucket_id))
                if p.pos is None:
                    await self._finish(p)
                    return WorkerState.IDLE
                break
            p.pos = k + b"\x00"
        return WorkerState.BUSY

    async def _finish(self, p: _Pass) -> None:
        await self.g.db.write_insert(STATE_TREE, LAST_COMPLETED, p.day.isoformat().encode())
        self.last_completed, self.last_pass, self.running = p.day, p, None
        log.info("lifecycle pass of %s done: %d objects seen, %d expired, %d uploads "
                 "aborted", p.day, p.seen, p.expired, p.aborted)

    async def _rules_for(self, p: _Pass, bucket_id: bytes) -> list[LifecycleRule]:
        if p.bucket is None or p.bucket.id != bucket_id:
            b = await self.g.bucket_table.get(bucket_id)
            p.bucket = b if b is not None else Bucket(bucket_id, deleted=True)
            p.rules = [] if p.bucket.deleted else \
                [r for r in stored_rules(p.bucket.lifecycle[1]) if r.enabled]
        return p.rules

    async def _process(self, p: _Pass, obj: Object) -> bool:
        """Apply the rules to one object; False if its bucket has none (skip the bucket)."""
        rules = await self._rules_for(p, obj.bucket_id)
        if not rules:
            return False
        cur = obj.current()
        if cur is not None and cur.meta is not None and any(
                expires(r, obj.key, cur.meta.size, cur.timestamp, p.day) for r in rules):
            if await self._expire(obj.bucket_id, obj.key, cur.uuid):
                p.expired += 1
        stale = [ObjectVersion(v.uuid, v.timestamp, ABORTED, multipart=v.multipart)
                 for v in obj.versions if v.state == UPLOADING
                 and any(aborts(r, obj.key, v.timestamp, p.day) for r in rules)]
        if stale:
            await self.g.object_table.insert(Object(obj.bucket_id, obj.key, stale))
            p.aborted += len(stale)
        return True

    async def _expire(self, bucket_id: bytes, key: str, version: bytes) -> bool:
        """Delete the object, unless it changed since it was read (a new PUT wins)."""
        fresh = await self.g.object_table.get(bucket_id, key.encode())
        cur = fresh.current() if fresh is not None else None
        if fresh is None or cur is None or cur.uuid != version:
            return False
        ts = next_timestamp(self.clock, fresh.newest_timestamp())
        marker = ObjectVersion(gen_uuid(), ts, COMPLETE, kind=DELETE_MARKER)
        await self.g.object_table.insert(Object(bucket_id, key, [marker]))
        return True

    async def wait_for_work(self) -> None:
        while self.running is None:
            today = self._today()
            if self.last_completed is None or today > self.last_completed:
                self.running = _Pass(today)
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), min(MAX_SLEEP_S, (
                    seconds_until_next_pass(self.last_completed, self.clock.now_msec())))
                    + 0.001)
            except TimeoutError:
                pass

    def status(self) -> dict[str, object]:
        p = self.running
        if p is not None:
            return {"progress": f"{p.seen} objects",
                    "freeform": [f"Started: {p.day}", f"Objects expired: {p.expired}",
                                 f"Multipart uploads aborted: {p.aborted}"]}
        free = [f"Last completed: {self.last_completed}"]
        if self.last_pass is not None:
            free += [f"Objects expired: {self.last_pass.expired}",
                     f"Multipart uploads aborted: {self.last_pass.aborted}"]
        return {"progress": None, "freeform": free}
