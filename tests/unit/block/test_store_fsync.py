"""data_fsync: each block file is synced before its rename, and its directory after (and the
parents of directories created for it), so the rename survives a power loss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pygarage.block import store as store_mod
from pygarage.block.block import pack_block
from pygarage.block.store import BlockStore
from pygarage.util.config import DataDir


def _synced(monkeypatch: pytest.MonkeyPatch, fsync: bool, tmp_path: Path) -> list[str]:
    synced: list[str] = []
    real_fsync = os.fsync

    def fake_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(store_mod.os, "fsync", fake_fsync)
    s = BlockStore((DataDir(tmp_path / "data"),), fsync)
    h, block = pack_block(b"some block data" * 100, None)
    s.write(h, block, absent=True)
    h2, block2 = pack_block(b"another one" * 100, None)
    s.write(h2, block2, absent=True)
    return synced


def test_fsync_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    synced = _synced(monkeypatch, True, tmp_path)
    files = [p for p in synced if ".tmp" in p]  # synced under the temporary name
    dirs = {p for p in synced if os.path.isdir(p)}
    assert len(files) == 2 and len(files) + len(dirs) <= len(synced)
    for p in files:
        final = p.split(".tmp")[0]
        assert os.path.exists(final)
        bb = os.path.dirname(final)
        aa = os.path.dirname(bb)
        assert bb in dirs  # the rename
        assert aa in dirs and os.path.dirname(aa) in dirs  # the new directories


def test_fsync_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _synced(monkeypatch, False, tmp_path) == []
