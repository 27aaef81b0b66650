"""Metadata snapshots (`garage meta snapshot`, admin CreateMetadataSnapshot, and
metadata_auto_snapshot_interval): a consistent copy of the metadata db in
`<metadata_snapshots_dir or metadata_dir/snapshots>/<UTC time>/`, taken in a worker thread
while the node keeps serving. The two most recent snapshots are kept, as in Garage.

A snapshot is written into `<name>.tmp` and renamed when complete: a crash never leaves a
partial copy under a snapshot's name. Restoring one: stop the node, then put its `data.mdb`
in `metadata_dir/db.lmdb/` (LMDB) or its `db.sqlite` in `metadata_dir/` (SQLite).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..util.background import WorkerState
from ..util.clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    from .garage import Garage

log = logging.getLogger(__name__)

KEEP_SNAPSHOTS = 2
_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z(-\d+)?$")
# One snapshot at a time per snapshot directory (several in-process nodes have their own).
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class SnapshotBusy(Exception):
    """Another snapshot of this node is being taken."""


def snapshots_dir(g: Garage) -> Path:
    return g.config.metadata_snapshots_dir or g.config.metadata_dir / "snapshots"


def _sort_key(name: str) -> tuple[str, int]:
    stamp, _, suffix = name.rpartition("Z")
    return stamp, int(suffix.lstrip("-") or 0)


def snapshot_names(d: Path) -> list[str]:
    """(oldest first) the complete snapshots in d."""
    if not d.is_dir():
        return []
    return sorted((p.name for p in d.iterdir() if _NAME.match(p.name) and p.is_dir()),
                  key=_sort_key)


def snapshot_metadata(g: Garage, now: datetime | None = None) -> Path:
    """Take a snapshot, then drop all but the KEEP_SNAPSHOTS newest (blocking)."""
    d = snapshots_dir(g)
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(d.resolve(), threading.Lock())
    if not lock.acquire(blocking=False):
        raise SnapshotBusy("cannot take a snapshot: another one is in progress")
    try:
        d.mkdir(parents=True, exist_ok=True)
        when = now or datetime.fromtimestamp(SYSTEM_CLOCK.now_msec() / 1000, UTC)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        name, n = stamp, 0
        while (d / name).exists():  # two snapshots within one second
            n += 1
            name = f"{stamp}-{n}"
        tmp = d / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        log.info("snapshotting the metadata db to %s", d / name)
        try:
            g.db.snapshot(tmp)
            tmp.rename(d / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("metadata db snapshot finished")
        _cleanup(d)
        return d / name
    finally:
        lock.release()


def _cleanup(d: Path) -> None:
    names = snapshot_names(d)
    for old in names[:-KEEP_SNAPSHOTS]:
        try:
            shutil.rmtree(d / old)
        except OSError as e:
            log.error("could not delete old snapshot %s: %s", d / old, e)


async def async_snapshot_metadata(g: Garage) -> Path:
    return await asyncio.to_thread(snapshot_metadata, g)


class AutoSnapshotWorker:
    """metadata_auto_snapshot_interval: a first snapshot half an interval after start,
    then one every interval plus up to 20% (random), so nodes started together spread
    out, as in Garage."""

    name = "Metadata snapshot worker"

    def __init__(self, take: Callable[[], Awaitable[object]], interval_s: float,
                 monotonic: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random):
        self.take = take
        self.interval = interval_s
        self.monotonic = monotonic
        self.rand = rand
        self.next_at = monotonic() + interval_s / 2

    async def work(self) -> WorkerState:
        if self.monotonic() < self.next_at:
            return WorkerState.IDLE
        try:
            await self.take()
        finally:
            # A failure is retried an interval later, not in a loop.
            self.next_at = self.monotonic() + self.interval * (1 + self.rand() / 5)
        return WorkerState.IDLE

    async def wait_for_work(self) -> None:
        await asyncio.sleep(max(0.0, self.next_at - self.monotonic()))

    def status(self) -> dict[str, object]:
        at = time.time() + (self.next_at - self.monotonic())
        return {"freeform": [
            f"Next snapshot: {datetime.fromtimestamp(at, UTC):%Y-%m-%dT%H:%M:%SZ}"]}
