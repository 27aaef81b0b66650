"""metadata_fsync really reaches the engines: read back what each one applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from pygarage.db.lmdb_engine import LmdbDb
from pygarage.db.sqlite_engine import SqliteDb


@pytest.mark.parametrize("fsync", [True, False])
def test_lmdb_sync_flags(tmp_path: Path, fsync: bool) -> None:
    d = LmdbDb(tmp_path / "l", fsync=fsync, map_size=1 << 24)
    try:
        flags = d.env.flags()
        assert flags["sync"] is fsync
        assert flags["metasync"] is fsync
    finally:
        d.close()


@pytest.mark.parametrize(("fsync", "level"), [(True, 2), (False, 0)])  # FULL, OFF
def test_sqlite_synchronous(tmp_path: Path, fsync: bool, level: int) -> None:
    d = SqliteDb(tmp_path / "s.sqlite", fsync=fsync)
    try:
        assert d.conn.execute("PRAGMA synchronous").fetchone()[0] == level
        assert d.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        d.close()
