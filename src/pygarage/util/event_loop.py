"""The node's event loop: uvloop (libuv's loop, in C) unless PYGARAGE_EVENT_LOOP=asyncio.

uvloop because a small request spends a third of its CPU in the event loop and the HTTP
transport: with it a node spends about 10 % less CPU per 4 KiB GET or PUT and serves
5-13 % more of them (bench/ab_small.py, both loops side by side). Nothing else depends on
the choice: listeners are util/listener.py's on either loop, and a GET's sendfile has a
path for each (api/s3/send_blocks.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import StartupError

T = TypeVar("T")

ENV = "PYGARAGE_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")


def run(main: Coroutine[Any, Any, T]) -> T:
    choice = os.environ.get(ENV, "uvloop").strip().lower() or "uvloop"
    if choice not in CHOICES:
        main.close()
        raise StartupError(f"{ENV}={choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return asyncio.run(main)
    import uvloop  # noqa: PLC0415 (only when chosen)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
