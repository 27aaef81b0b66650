"""The scrub: read every block file of this node and check it against its hash. A corrupted
file is renamed `.corrupted` (never served again) and reported to `on_corrupted`, which
gets a good copy fetched from another node.

It runs by itself every 25 days plus a random 0-10 days (Garage's interval, spreading the
load of a cluster's nodes), or on `garage repair scrub start`; it can be paused (for 24 h,
then it resumes by itself), resumed and cancelled. Its state (tranquility, times of the
last completed and of the next run, corruptions found, position of a scrub under way) is
kept in the metadata db, so a restart resumes where it was.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack

from ..db.base import Db
from ..util.background import (
    BgVars,
    Throttled,
    Tranquilizer,
    VarError,
    WorkerState,
    parse_int_var,
)
from ..util.clock import SYSTEM_CLOCK, Clock, msec_to_rfc3339
from ..util.errors import CorruptData
from .block import unpack_block
from .store import BlockStore
from .walk import BlockWalker

log = logging.getLogger(__name__)

STATE_TREE = "block_scrub"
STATE_KEY = b"state"
CORRUPTED_TREE = "block_scrub_corrupted"  # hash -> time found (msec, 8 bytes)
DAY_MS = 24 * 3600 * 1000
INTERVAL_MS = 25 * DAY_MS
JITTER_MS = 10 * DAY_MS
PAUSE_MS = DAY_MS
INITIAL_TRANQUILITY = 4
CHECKPOINT_EVERY_MS = 60_000
MAX_WAIT_S = 3600.0  # re-read the clock at least hourly while waiting

OnCorrupted = Callable[[bytes], Awaitable[None]]


def next_run_after(now_ms: int, rng: random.Random | None = None) -> int:
    return now_ms + INTERVAL_MS + (rng or random).randrange(JITTER_MS)


class ScrubCommandError(Exception):
    """A scrub command that does not apply (start while running...)."""


@dataclass
class ScrubState:
    tranquility: int = INITIAL_TRANQUILITY
    last_completed: int = 0      # msec, 0: never
    next_run: int = 0
    corruptions: int = 0
    # While a scrub is under way: [dirs walked, dir index, last file done], and (paused)
    # the time it resumes.
    checkpoint: list[Any] | None = None
    paused_until: int | None = None

    def encode(self) -> bytes:
        return msgpack.packb([1, self.tranquility, self.last_completed, self.next_run,
                              self.corruptions, self.checkpoint, self.paused_until])

    @staticmethod
    def decode(raw: bytes) -> ScrubState:
        _v, tranq, last, nxt, corr, cp, paused = msgpack.unpackb(raw)[:7]
        return ScrubState(tranq, last, nxt, corr, cp, paused)


class ScrubWorker:
    name = "Block scrub worker"

    def __init__(self, store: BlockStore, db: Db, on_corrupted: OnCorrupted,
                 clock: Clock = SYSTEM_CLOCK):
        self.store = store
        self.db = db
        self.on_corrupted = on_corrupted
        self.clock = clock
        db.open_tree(STATE_TREE)
        db.open_tree(CORRUPTED_TREE)
        raw = db.get(STATE_TREE, STATE_KEY)
        self.st = ScrubState.decode(raw) if raw else \
            ScrubState(next_run=next_run_after(clock.now_msec()))
        self.walker: BlockWalker | None = None
        if self.st.checkpoint is not None:
            dirs, d, after = self.st.checkpoint
            # The same dirs as when it was saved: resume; else start the walk over.
            same = list(dirs) == store.all_dirs()
            self.walker = BlockWalker(store.all_dirs(),
                                      (int(d), str(after)) if same else (0, ""))
        self.tranquilizer = Tranquilizer()
        self._wake = asyncio.Event()
        self._last_cp = 0
        self.checked = 0  # files checked by the current (or last) scrub

    # -- state
    @property
    def running(self) -> bool:
        return self.walker is not None and self.st.paused_until is None

    async def _save(self) -> None:
        if self.walker is not None:
            self.st.checkpoint = [self.walker.dirs, *self.walker.pos]
        else:
            self.st.checkpoint = None
        raw = self.st.encode()
        await self.db.write_insert(STATE_TREE, STATE_KEY, raw)

    # -- commands (garage repair scrub ...)
    async def command(self, cmd: str) -> None:
        now = self.clock.now_msec()
        if cmd == "start":
            if self.walker is not None:
                raise ScrubCommandError("a scrub is already under way (pause, resume or "
                                        "cancel it)")
            self._start()
        elif cmd == "pause":
            if self.walker is None:
                raise ScrubCommandError("no scrub is under way")
            self.st.paused_until = now + PAUSE_MS
        elif cmd == "resume":
            if self.walker is None or self.st.paused_until is None:
                raise ScrubCommandError("the scrub is not paused")
            self.st.paused_until = None
        elif cmd == "cancel":
            if self.walker is None:
                raise ScrubCommandError("no scrub is under way")
            self.walker, self.st.paused_until = None, None
        else:
            raise ScrubCommandError(f"unknown scrub command {cmd!r}")
        log.info("scrub: %s", cmd)
        await self._save()
        self._wake.set()

    def _start(self) -> None:
        self.walker = BlockWalker(self.store.all_dirs())
        self.st.paused_until = None
        self.checked = 0
        self.tranquilizer.reset()
        log.info("scrub: checking every block of this node")

    # -- the worker
    async def work(self) -> WorkerState | Throttled:
        w = self.walker
        if w is None or self.st.paused_until is not None:
            return WorkerState.IDLE
        self.tranquilizer.reset()
        batch = await asyncio.to_thread(w.next_batch, 1)
        if not batch:
            return await self._finish()
        f = batch[0]
        if await asyncio.to_thread(self._check, f.path, f.hash,
                                   f.base in self.store.writable_dirs()):
            self.checked += 1
        else:
            self.st.corruptions += 1
            await self.db.write(lambda tx: tx.insert(
                CORRUPTED_TREE, f.hash, self.clock.now_msec().to_bytes(8, "big")))
            await self._save()
            await self.on_corrupted(f.hash)
        now = self.clock.now_msec()
        if now - self._last_cp > CHECKPOINT_EVERY_MS:
            self._last_cp = now
            await self._save()
        return self.tranquilizer.throttle(self.st.tranquility)

    def _check(self, path: str, h: bytes, writable: bool) -> bool:
        """Blocking: False if the file was corrupted (moved aside, unless its dir is
        read-only)."""
        try:
            unpack_block(h, self.store.read_file(path))
            return True
        except FileNotFoundError:  # deleted (GC) or moved (rebalance) meanwhile
            return True
        except CorruptData as e:
            log.error("scrub: %s (%s)%s", e, path, "; moved aside" if writable else "")
            if writable:
                self.store.move_corrupted(h, path)
            return False

    async def _finish(self) -> WorkerState:
        now = self.clock.now_msec()
        self.walker = None
        self.st.last_completed = now
        self.st.next_run = next_run_after(now)
        await self._save()
        log.info("scrub done: %d blocks checked, next scrub %s", self.checked,
                 msec_to_rfc3339(self.st.next_run))
        return WorkerState.IDLE

    async def wait_for_work(self) -> None:
        while not self.running:
            now = self.clock.now_msec()
            if self.walker is None and now >= self.st.next_run:
                self._start()
                await self._save()
                return
            if self.st.paused_until is not None and now >= self.st.paused_until:
                self.st.paused_until = None
                await self._save()
                return
            until = self.st.paused_until if self.walker is not None else self.st.next_run
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(),
                                       min(MAX_WAIT_S, max(0, (until or now) - now) / 1000))
            except TimeoutError:
                pass

    def status(self) -> dict[str, object]:
        out: dict[str, object] = {"tranquility": self.st.tranquility,
                                  "persistentErrors": self.st.corruptions}
        if self.walker is not None:
            out["progress"] = f"{self.walker.progress() * 100:.2f}%"
            free = [f"Blocks checked: {self.checked}"]
            if self.st.paused_until is not None:
                free.append(f"Scrub paused, resumes at {msec_to_rfc3339(self.st.paused_until)}")
        else:
            free = [f"Last scrub completed at {self._when(self.st.last_completed)}",
                    f"Next scrub scheduled for {msec_to_rfc3339(self.st.next_run)}"]
        recent = self.db.range(CORRUPTED_TREE, None, None, 20)
        if recent:
            free.append("Corrupted blocks found (moved aside, a copy is fetched from the "
                        "other nodes): " + ", ".join(k.hex() for k, _ in recent))
        out["freeform"] = free
        return out

    @staticmethod
    def _when(ms: int) -> str:
        return msec_to_rfc3339(ms) if ms else "never"

    # -- worker variables
    def register_vars(self, bg_vars: BgVars) -> None:
        bg_vars.register("scrub-tranquility", lambda: self.st.tranquility,
                         self._set_tranquility)
        bg_vars.register("scrub-last-completed", lambda: self._when(self.st.last_completed))
        # Settable (Garage's is read-only): schedule the next automatic scrub.
        bg_vars.register("scrub-next-run", lambda: msec_to_rfc3339(self.st.next_run),
                         self._set_next_run)
        bg_vars.register("scrub-corruptions_detected", lambda: self.st.corruptions)

    async def set_tranquility(self, n: int) -> None:
        self.st.tranquility = n
        await self._save()

    async def _set_tranquility(self, value: str) -> None:
        await self.set_tranquility(parse_int_var("scrub-tranquility", value, 0, 1000))

    async def _set_next_run(self, value: str) -> None:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise VarError(f"invalid value for scrub-next-run: {value!r} (a date and time, "
                           "e.g. 2026-01-31T12:00:00Z)") from None
        if when.tzinfo is None:
            raise VarError("scrub-next-run: give the time zone (e.g. a final Z for UTC)")
        self.st.next_run = int(when.timestamp() * 1000)
        await self._save()
        self._wake.set()
