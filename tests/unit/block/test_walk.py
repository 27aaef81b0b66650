"""The block walker: every block file once, in order, resumable from a saved position."""

from __future__ import annotations

import os
from pathlib import Path

from pygarage.block.walk import BlockWalker


def make_blocks(base: Path, n: int) -> set[str]:
    names = set()
    for _ in range(n):
        h = os.urandom(32).hex()
        d = base / h[:2] / h[2:4]
        d.mkdir(parents=True, exist_ok=True)
        name = h + (".zst" if len(names) % 2 else "")
        (d / name).write_bytes(b"x")
        names.add(h)
    # Not blocks: ignored.
    (base / "ab" / "cd").mkdir(parents=True, exist_ok=True)
    (base / "ab" / "cd" / ("0" * 64 + ".corrupted")).write_bytes(b"x")
    (base / "ab" / "cd" / "notes.txt").write_bytes(b"x")
    return names


def test_walks_every_block_once_and_resumes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    want = make_blocks(a, 40) | make_blocks(b, 25)
    dirs = [str(a), str(b), str(tmp_path / "missing")]
    w = BlockWalker(dirs)
    seen: list[str] = []
    progress = [w.progress()]
    first = w.next_batch(17)
    seen += [f.hash.hex() for f in first]
    saved = w.pos
    rest = []
    while batch := w.next_batch(5):
        rest += [f.hash.hex() for f in batch]
        progress.append(w.progress())
    assert w.done and w.progress() == 1.0
    assert sorted(seen + rest) == sorted(want) and len(seen + rest) == 65
    assert progress == sorted(progress)
    # Resumed from the saved position: exactly what was left.
    w2 = BlockWalker(dirs, saved)
    again = []
    while batch := w2.next_batch(100):
        again += [f.hash.hex() for f in batch]
    assert again == rest
    for f in first:
        assert os.path.exists(f.path) and f.base in (str(a), str(b))
