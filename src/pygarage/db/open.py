"""Pick and open the configured engine."""

from __future__ import annotations

from pathlib import Path

from .base import Db


def open_db(engine: str, metadata_dir: Path, *, fsync: bool = False,
            lmdb_map_size: int = 1 << 40) -> Db:
    if engine == "lmdb":
        from .lmdb_engine import LmdbDb
        return LmdbDb(metadata_dir / "db.lmdb", fsync=fsync, map_size=lmdb_map_size)
    if engine == "sqlite":
        from .sqlite_engine import SqliteDb
        return SqliteDb(metadata_dir / "db.sqlite", fsync=fsync)
    raise ValueError(f"unknown db engine {engine!r}")
