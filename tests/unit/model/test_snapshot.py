"""Metadata snapshots without a server: the engines' copies open as databases holding the
same entries, the newest two are kept, the auto-snapshot schedule (fake clock), and the
config keys (refused when invalid, never ignored)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pygarage.db.lmdb_engine import LmdbDb
from pygarage.db.sqlite_engine import SqliteDb
from pygarage.model.snapshot import AutoSnapshotWorker, snapshot_metadata, snapshot_names
from pygarage.util.background import WorkerState
from pygarage.util.config import ConfigError, config_from_dict


def _cfg(tmp: Path, **extra: Any) -> dict[str, Any]:
    return {"metadata_dir": str(tmp / "meta"), "data_dir": str(tmp / "data"),
            "rpc_secret": "00" * 32, "rpc_bind_addr": "127.0.0.1:3901",
            "replication_factor": 1, **extra}


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_engine_snapshot_holds_the_same_entries(tmp_path: Path, engine: str) -> None:
    db = LmdbDb(tmp_path / "db.lmdb") if engine == "lmdb" else SqliteDb(tmp_path / "db.sqlite")
    db.open_tree("t")
    long_key = b"k" * 700  # stored in two parts by the LMDB engine
    db.transaction(lambda tx: [tx.insert("t", k, b"v" + k) for k in
                               (b"a", b"b", long_key)])
    (tmp_path / "snap").mkdir()
    db.snapshot(tmp_path / "snap")
    db.insert("t", b"c", b"later")
    copy = LmdbDb(tmp_path / "snap") if engine == "lmdb" \
        else SqliteDb(tmp_path / "snap" / "db.sqlite")
    copy.open_tree("t")
    try:
        assert copy.range("t") == [(b"a", b"va"), (b"b", b"vb"), (long_key, b"v" + long_key)]
        assert copy.tree_len("t") == 3
    finally:
        copy.close()
        db.close()


def test_snapshots_keep_the_two_newest(tmp_path: Path) -> None:
    class G:
        config = config_from_dict(_cfg(tmp_path))
        db = LmdbDb(tmp_path / "meta" / "db.lmdb")

    G.db.open_tree("t")
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    paths = [snapshot_metadata(G, t0 + timedelta(seconds=s)) for s in (0, 0, 1, 9)]  # type: ignore[arg-type]
    assert [p.name for p in paths] == ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z-1",
                                       "2026-01-02T03:04:06Z", "2026-01-02T03:04:14Z"]
    assert snapshot_names(tmp_path / "meta" / "snapshots") == [
        "2026-01-02T03:04:06Z", "2026-01-02T03:04:14Z"]
    G.db.close()


async def test_auto_snapshot_schedule() -> None:
    now = [1000.0]
    taken: list[float] = []

    async def take() -> None:
        taken.append(now[0])

    w = AutoSnapshotWorker(take, 3600, monotonic=lambda: now[0], rand=lambda: 0.5)
    assert await w.work() == WorkerState.IDLE and taken == []
    now[0] += 1799
    await w.work()
    assert taken == []
    now[0] += 1  # half an interval after start
    await w.work()
    assert taken == [2800.0]
    assert w.next_at == 2800.0 + 3600 * 1.1
    assert w.status()["freeform"][0].startswith("Next snapshot: ")


@pytest.mark.parametrize(("value", "expected"), [
    ("10m", 600), ("6h", 21600), ("1d", 86400), ("1h30m", 5400)])
def test_auto_snapshot_interval_parsed(tmp_path: Path, value: str, expected: int) -> None:
    cfg = config_from_dict(_cfg(tmp_path, metadata_auto_snapshot_interval=value,
                                metadata_snapshots_dir="/srv/snaps"))
    assert cfg.metadata_auto_snapshot_interval == expected
    assert cfg.metadata_snapshots_dir == Path("/srv/snaps")


@pytest.mark.parametrize("value", ["5m", "599s", "0", "soon", "", 3600, "-1h"])
def test_auto_snapshot_interval_refused(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match="metadata_auto_snapshot_interval"):
        config_from_dict(_cfg(tmp_path, metadata_auto_snapshot_interval=value))


@pytest.mark.parametrize("value", ["", 5, True])
def test_snapshots_dir_refused(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match="metadata_snapshots_dir"):
        config_from_dict(_cfg(tmp_path, metadata_snapshots_dir=value))


def test_one_snapshot_at_a_time(tmp_path: Path) -> None:
    import pygarage.model.snapshot as snap

    class G:
        config = config_from_dict(_cfg(tmp_path))
        db = LmdbDb(tmp_path / "meta" / "db.lmdb")

    d = (tmp_path / "meta" / "snapshots").resolve()
    lock = snap._LOCKS.setdefault(d, threading.Lock())
    with lock, pytest.raises(snap.SnapshotBusy):
        snapshot_metadata(G)  # type: ignore[arg-type]
    assert snapshot_metadata(G).is_dir()  # type: ignore[arg-type]
    G.db.close()
