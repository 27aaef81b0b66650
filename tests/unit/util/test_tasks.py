"""util/tasks.drop: a dropped task's error is taken, never logged as "never retrieved"."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from pygarage.util.tasks import drop


async def _fails_after(s: float) -> None:
    await asyncio.sleep(s)
    raise RuntimeError("quorum not reached")


def _unretrieved(drop_it: bool, delay: float) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: seen.append(ctx))
        t = asyncio.ensure_future(_fails_after(delay))
        await asyncio.sleep(0.01)  # the task has failed (delay 0) or still runs
        if drop_it:
            drop(t)
        del t
        await asyncio.sleep(0.02)
        gc.collect()
    asyncio.run(main())
    gc.collect()
    return seen


def test_an_undropped_failed_task_is_reported() -> None:
    # The check below can fail: without drop, asyncio reports the lost error.
    assert any("never retrieved" in c["message"] for c in _unretrieved(False, 0))


def test_a_dropped_failed_task_is_silent() -> None:
    assert _unretrieved(True, 0) == []


def test_a_dropped_running_task_is_cancelled_and_silent() -> None:
    assert _unretrieved(True, 0.05) == []


def test_drop_cancels_a_running_task() -> None:
    async def main() -> bool:
        t = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        drop(t)
        await asyncio.sleep(0)
        return t.cancelled()
    assert asyncio.run(main())
