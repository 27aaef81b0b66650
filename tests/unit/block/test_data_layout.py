"""The data-dir layout: slots in proportion to capacity, minimal moves when the directories
change, read-only dirs read but never primary, persistence; and BlockStore using it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pygarage.block.block import pack_block
from pygarage.block.layout import N_SLOTS, DataLayout, LayoutDir, slot_of
from pygarage.block.store import BlockStore
from pygarage.util.config import ConfigError, DataDir, load_config


def empty(_path: str) -> bool:
    return False


def test_slots_in_proportion_to_capacity() -> None:
    lay = DataLayout.initialize([LayoutDir("/a", 1000), LayoutDir("/b", 3000)], empty)
    assert lay.slot_counts() == [256, 768]
    assert not lay.has_secondaries()
    lay = DataLayout.initialize([LayoutDir("/a", 1), LayoutDir("/b", 1), LayoutDir("/c", 1)],
                                empty)
    assert sum(lay.slot_counts()) == N_SLOTS and max(lay.slot_counts()) - \
        min(lay.slot_counts()) <= 1


def test_adding_a_dir_moves_only_its_share() -> None:
    old = DataLayout.initialize([LayoutDir("/a", 1000), LayoutDir("/b", 1000)], empty)
    new = old.updated([LayoutDir("/a", 1000), LayoutDir("/b", 1000), LayoutDir("/c", 2000)],
                      empty)
    assert new.slot_counts() == [256, 256, 512]
    moved = [s for s in range(N_SLOTS) if old.prim[s] != new.prim[s]]
    assert len(moved) == 512  # exactly the new dir's share, nothing shuffled between a and b
    for s in moved:
        assert new.prim[s] == 2
        # The old primary stays a place to look until the rebalance.
        assert new.sec[s] == [old.prim[s]]
    for s in set(range(N_SLOTS)) - set(moved):
        assert new.sec[s] == []


def test_capacity_change_and_removal() -> None:
    old = DataLayout.initialize([LayoutDir("/a", 1000), LayoutDir("/b", 1000)], empty)
    grown = old.updated([LayoutDir("/a", 3000), LayoutDir("/b", 1000)], empty)
    assert grown.slot_counts() == [768, 256]
    assert sum(old.prim[s] != grown.prim[s] for s in range(N_SLOTS)) == 256
    # /a removed from the config: /b takes everything; /a is gone from the lists.
    only_b = grown.updated([LayoutDir("/b", 1000)], empty)
    assert only_b.slot_counts() == [N_SLOTS]
    assert all(s == [] for s in only_b.sec)


def test_read_only_dir_is_read_never_primary() -> None:
    old = DataLayout.initialize([LayoutDir("/old", 1000)], empty)
    new = old.updated([LayoutDir("/old", None), LayoutDir("/new", 1000)], empty)
    assert new.slot_counts() == [0, N_SLOTS]
    assert all(s == [0] for s in new.sec)  # every block may still be in /old
    # A read-only dir holding blocks at first start is a secondary of every slot.
    lay = DataLayout.initialize([LayoutDir("/ro", None), LayoutDir("/rw", 1)],
                                lambda p: p == "/ro")
    assert lay.slot_counts() == [0, N_SLOTS] and all(s == [0] for s in lay.sec)


def test_readded_nonempty_dir_is_searched() -> None:
    old = DataLayout.initialize([LayoutDir("/a", 1000)], empty)
    new = old.updated([LayoutDir("/a", 1000), LayoutDir("/b", 1000)], lambda p: p == "/b")
    for s in range(N_SLOTS):
        other = 1 - new.prim[s]
        assert other in new.sec[s]


def test_encode_decode_and_without_secondaries() -> None:
    old = DataLayout.initialize([LayoutDir("/a", 1000)], empty)
    lay = old.updated([LayoutDir("/a", 1000), LayoutDir("/b", 500)], empty)
    back = DataLayout.decode(lay.encode())
    assert back == lay
    assert not back.without_secondaries().has_secondaries()
    with pytest.raises(ValueError):
        DataLayout.decode(b"junk")


def _store(tmp: Path, dirs: list[tuple[str, int | None]]) -> BlockStore:
    return BlockStore(tuple(DataDir(tmp / name, cap, cap is None) for name, cap in dirs),
                      False, tmp / "data_layout")


def test_store_persists_layout_and_finds_blocks_after_a_dir_is_added(tmp_path: Path) -> None:
    s = _store(tmp_path, [("d1", 1000)])
    blocks = [pack_block(os.urandom(100), None) for _ in range(64)]
    for h, b in blocks:
        s.write(h, b)
    assert (tmp_path / "data_layout").exists()
    s2 = _store(tmp_path, [("d1", 1000), ("d2", 3000)])
    assert s2.layout.slot_counts() == [256, 768]
    # Blocks now assigned to d2 are still found (and read) in d1.
    moved = [h for h, _ in blocks if s2.layout.primary(h) == 1]
    assert moved
    for h, b in blocks:
        got = s2.read(h)
        assert got is not None and got.payload == b.payload
    # New writes go to the primary dir.
    h, b = pack_block(os.urandom(100), None)
    s2.write(h, b)
    assert s2.find(h) is not None and str(s2.find(h)[0]).startswith(  # type: ignore[index]
        str(tmp_path / ("d2" if s2.layout.primary(h) == 1 else "d1")))
    # Restart with the same config: the same layout (secondaries kept until a rebalance).
    s3 = _store(tmp_path, [("d1", 1000), ("d2", 3000)])
    assert s3.layout == s2.layout
    assert slot_of(h) in range(N_SLOTS)


def test_store_never_writes_or_deletes_in_read_only_dir(tmp_path: Path) -> None:
    s = _store(tmp_path, [("old", 1000)])
    h, b = pack_block(os.urandom(100), None)
    s.write(h, b)
    s2 = _store(tmp_path, [("old", None), ("new", 1000)])
    assert s2.read(h) is not None  # found in the read-only dir
    s2.delete(h)
    assert s2.read(h) is not None  # deleting never touches the read-only dir
    h2, b2 = pack_block(os.urandom(100), None)
    s2.write(h2, b2)
    assert str(s2.find(h2)[0]).startswith(str(tmp_path / "new"))  # type: ignore[index]


def _config(tmp: Path, data_dir: str) -> Path:
    p = tmp / "garage.toml"
    p.write_text(f'metadata_dir = "{tmp}/m"\ndata_dir = {data_dir}\n'
                 'rpc_bind_addr = "127.0.0.1:3901"\nreplication_factor = 1\n'
                 f'rpc_secret = "{"ab" * 32}"\n')
    return p


@pytest.mark.parametrize("data_dir", [
    '[{ path = "/x" }]',                                       # neither
    '[{ path = "/x", capacity = "1G", read_only = true }]',   # both
    '[{ path = "/x", capacity = 0 }]',
    '[{ path = "/x", capacity = "1G" }, { path = "/x", capacity = "2G" }]',
    '[{ path = "/x", read_only = true }]',                     # nothing writable
    '[]',
])
def test_bad_data_dir_lists_are_refused(tmp_path: Path, data_dir: str) -> None:
    with pytest.raises(ConfigError):
        load_config(str(_config(tmp_path, data_dir)))


def test_damaged_layout_file_is_refused_plainly(tmp_path: Path) -> None:
    _store(tmp_path, [("d1", 1000)])
    (tmp_path / "data_layout").write_bytes(b"PGdlay1garbage")
    with pytest.raises(ConfigError, match="move it aside"):
        _store(tmp_path, [("d1", 1000)])
