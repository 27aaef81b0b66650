"""A tree opened while another thread is inside a write transaction: it waits for that
transaction, and neither hangs. With LMDB it once did: py-lmdb's open_db waits for the
write lock holding the GIL, which the writing thread needs to finish. Run in a child
process with a deadline, so that a regression fails the test instead of hanging the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCENARIO = textwrap.dedent("""
    import sys, threading, time
    from pathlib import Path
    engine, path = sys.argv[1], Path(sys.argv[2])
    if engine == "lmdb":
        from pygarage.db.lmdb_engine import LmdbDb
        db = LmdbDb(path, map_size=1 << 24)
    else:
        from pygarage.db.sqlite_engine import SqliteDb
        db = SqliteDb(path)
    db.open_tree("a")
    inside, release = threading.Event(), threading.Event()

    def fn(tx):
        tx.insert("a", b"k", b"v")
        inside.set()
        while not release.is_set():  # Python work inside the transaction: it needs the GIL
            time.sleep(0)
        tx.insert("a", b"k2", b"v2")

    writer = threading.Thread(target=lambda: db.transaction(fn))
    writer.start()
    inside.wait()
    threading.Timer(0.3, release.set).start()
    db.open_tree("b")  # while the writer is inside its transaction
    writer.join()
    db.insert("b", b"x", b"y")
    assert db.get("a", b"k2") == b"v2" and db.get("b", b"x") == b"y"
    db.close()
    print("done")
""")


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_open_tree_waits_for_a_write_transaction_of_another_thread(
        tmp_path: Path, engine: str) -> None:
    src = str(Path(__file__).resolve().parents[3] / "src")
    r = subprocess.run([sys.executable, "-c", SCENARIO, engine, str(tmp_path / "db")],
                       capture_output=True, text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": src})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "done"
