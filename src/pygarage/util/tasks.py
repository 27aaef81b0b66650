"""Tasks whose result is no longer wanted."""

from __future__ import annotations

import asyncio
from typing import Any


def drop(task: asyncio.Future[Any]) -> None:
    """Cancel `task` if it still runs, and take its outcome whenever it ends: an error
    nobody awaits would otherwise be logged by asyncio, with a traceback, as "never
    retrieved" (a read raced by a write that failed first, for instance)."""
    if not task.done():
        task.cancel()
    task.add_done_callback(_collect)


def _collect(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
