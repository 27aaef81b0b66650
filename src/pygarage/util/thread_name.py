"""The kernel's name for the calling thread, as `top -H`, `ps -L` and /proc/<pid>/task show
it: an operator (or bench/server_threads.py) can then tell the event loop from the
database writer and the block I/O threads. Python's own thread names stay in Python."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

_PR_SET_NAME = 15  # prctl(2); Linux keeps the first 15 bytes
_prctl: Any = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        _prctl = None


def name_os_thread(name: str) -> None:
    """Best effort: nothing happens where prctl is missing (not Linux)."""
    if _prctl is not None:
        _prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
