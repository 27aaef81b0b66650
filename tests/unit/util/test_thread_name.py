"""The block I/O and database writer threads carry their own names in the kernel (top -H,
ps -L, /proc), not the interpreter's name."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from pygarage.db.base import Transaction
from pygarage.db.open import open_db
from pygarage.util.offload import Offload

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl names")


def _kernel_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


async def test_offload_threads_are_named() -> None:
    assert await Offload(2).run(_kernel_name) == "pg-offload"
    assert _kernel_name() != "pg-offload"  # the caller's own thread is left alone


async def test_the_db_writer_thread_is_named(tmp_path: Path) -> None:
    db = open_db("sqlite", tmp_path / "db", fsync=False)
    try:
        def fn(_tx: Transaction) -> str:
            return _kernel_name()
        assert await db.write(fn) == "pg-db-writer"
    finally:
        db.close()
