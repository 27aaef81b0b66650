"""Whether the event loop keeps running while something slow happens: count its ticks.
Never imported by production code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def ticks_during(aw: Awaitable[object]) -> int:
    """How many 10 ms sleeps another task finished while `aw` ran: about its duration in
    hundredths of a second if the loop kept turning, near 0 if `aw` blocked it."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1
    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker is sleeping before `aw` starts
    try:
        await aw
    finally:
        t.cancel()
    return ticks
