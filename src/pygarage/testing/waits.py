"""Waiting, in tests, for state that changes in the background (read repairs, copies
still in flight after a quorum, queues): polled against a deadline, never a fixed sleep,
which a loaded machine outlasts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(cond: Callable[[], object], within_s: float = 60.0, what: str = "",
                step_s: float = 0.05) -> None:
    """Polls: the state watched lives in several nodes with no event to wait on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not cond():
        assert loop.time() < deadline, f"{what or 'condition'} not met in time"
        await asyncio.sleep(step_s)
