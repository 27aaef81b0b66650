"""Background workers: one protocol, one runner that counts errors and reports status
(what `garage worker list|info` shows), the tranquilizer that slows long scans down, and
the registry of worker variables (`garage worker get|set`)."""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from .logsafe import logsafe

log = logging.getLogger(__name__)


class WorkerState(enum.Enum):
    BUSY = "busy"      # call work() again right away
    IDLE = "idle"      # wait for wait_for_work()
    DONE = "done"      # the worker has finished for good
    THROTTLED = "throttled"  # set by the runner while it sleeps (Throttled, error backoff)


@dataclass(frozen=True)
class Throttled:
    """What work() returns to be called again after `secs` (a tranquilizer's sleep)."""
    secs: float


class Worker(Protocol):
    name: str

    async def work(self) -> WorkerState | Throttled: ...

    async def wait_for_work(self) -> None: ...

    def status(self) -> dict[str, object]:
        """Optional keys: progress (str), queueLength (int), tranquility (int),
        persistentErrors (int), freeform (list of str)."""
        ...


@dataclass
class WorkerInfo:
    tid: int
    worker: Worker
    state: WorkerState = WorkerState.BUSY
    throttle_secs: float = 0.0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


class BackgroundRunner:
    def __init__(self) -> None:
        self.workers: dict[int, WorkerInfo] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_tid = 1

    def spawn(self, worker: Worker) -> int:
        """Start `worker`; -> its task id (TID)."""
        info = WorkerInfo(self._next_tid, worker)
        self.workers[info.tid] = info
        self._next_tid += 1
        self._tasks.append(asyncio.get_running_loop().create_task(self._run(info)))
        return info.tid

    async def _run(self, info: WorkerInfo) -> None:
        while True:
            try:
                res = await info.worker.work()
                info.consecutive_errors = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a worker error must not kill the node: count, back off
                info.errors += 1
                info.consecutive_errors += 1
                info.last_error = f"{type(e).__name__}: {e}"
                info.last_error_at = time.time()
                log.warning("worker %s: %s", info.worker.name, logsafe(info.last_error))
                # As Garage: 1 s, then x1.5 per consecutive error, at most ~58 s.
                await self._sleep(info, 1.5 ** min(10, info.consecutive_errors - 1))
                continue
            if isinstance(res, Throttled):
                await self._sleep(info, res.secs)
                continue
            info.state = res
            if res is WorkerState.DONE:
                log.info("worker %s (TID %d) exited", info.worker.name, info.tid)
                return
            if res is WorkerState.IDLE:
                await info.worker.wait_for_work()
                info.state = WorkerState.BUSY
            else:
                await asyncio.sleep(0)

    @staticmethod
    async def _sleep(info: WorkerInfo, secs: float) -> None:
        info.state, info.throttle_secs = WorkerState.THROTTLED, secs
        await asyncio.sleep(secs)
        info.state = WorkerState.BUSY

    async def shutdown(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class Tranquilizer:
    """Slows a scan down: after each step, sleep `tranquility` times the average duration
    of the recent steps (tranquility 2: the worker spends 1/3 of its time working)."""

    def __init__(self, observations: int = 30, clock: Callable[[], float] = time.monotonic):
        self._obs: deque[float] = deque(maxlen=observations)
        self._clock = clock
        self._start = clock()

    def reset(self) -> None:
        """A step begins now."""
        self._start = self._clock()

    def delay(self, tranquility: int) -> float:
        """A step has just ended: -> how long to sleep before the next one."""
        self._obs.append(max(0.0, self._clock() - self._start))
        return tranquility * sum(self._obs) / len(self._obs)

    def throttle(self, tranquility: int) -> WorkerState | Throttled:
        """What work() returns after a step: busy at tranquility 0, else a pause."""
        d = self.delay(tranquility)
        return Throttled(d) if d > 0 else WorkerState.BUSY


class VarError(Exception):
    """A worker variable that does not exist, is read-only, or got an invalid value."""


Getter = Callable[[], object]
Setter = Callable[[str], Awaitable[None] | None]


class BgVars:
    """Worker variables by name (Garage's bg_vars): each with a getter and, unless read-only,
    a setter (sync or async) that parses and applies (and persists) the new value, or raises
    VarError or ValueError with a message for the operator."""

    def __init__(self) -> None:
        self._vars: dict[str, tuple[Getter, Setter | None]] = {}

    def register(self, name: str, get: Getter, set: Setter | None = None) -> None:
        if name in self._vars:
            raise ValueError(f"worker variable {name} registered twice")
        self._vars[name] = (get, set)

    def names(self) -> list[str]:
        return sorted(self._vars)

    def _lookup(self, name: str) -> tuple[Getter, Setter | None]:
        try:
            return self._vars[name]
        except KeyError:
            raise VarError(f"unknown worker variable {name!r} (known: "
                           f"{', '.join(self.names())})") from None

    def get(self, name: str) -> str:
        return str(self._lookup(name)[0]())

    def get_all(self) -> dict[str, str]:
        return {n: str(g()) for n, (g, _) in sorted(self._vars.items())}

    async def set(self, name: str, value: str) -> None:
        setter = self._lookup(name)[1]
        if setter is None:
            raise VarError(f"worker variable {name} is read-only")
        try:
            res = setter(value)
            if inspect.isawaitable(res):
                await res
        except ValueError as e:  # a setter's own check of the value
            raise VarError(str(e)) from None


def parse_int_var(name: str, value: str, lo: int, hi: int) -> int:
    """An integer variable's new value, within [lo, hi], or VarError."""
    try:
        n = int(value.strip())
    except ValueError:
        raise VarError(f"invalid value for {name}: {value!r} (an integer)") from None
    if not lo <= n <= hi:
        raise VarError(f"invalid value for {name}: {n} (from {lo} to {hi})")
    return n
