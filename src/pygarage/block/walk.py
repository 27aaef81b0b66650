"""Walk every block file of the data dirs, in a fixed order (dir, <aa>/<bb>, name), from a
position that can be saved and resumed (the scrub's checkpoint), with a progress figure.

Blocking (directory listings): call next_batch from a worker thread.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass

_BLOCK_NAME = re.compile(r"([0-9a-f]{64})(\.zst)?")
_HEX2 = re.compile(r"[0-9a-f]{2}")


@dataclass(frozen=True)
class BlockFile:
    path: str      # the file
    hash: bytes
    base: str      # the data dir it is in


def _hex_subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it
                          if _HEX2.fullmatch(e.name) and e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


class BlockWalker:
    def __init__(self, dirs: list[str], pos: tuple[int, str] = (0, "")):
        """pos: (index in dirs, "<aa>/<bb>/<name>" of the last file already returned)."""
        self.dirs = list(dirs)
        self.pos = pos
        self._leaves: list[str] | None = None  # "<aa>/<bb>" of the current dir, sorted
        self._leaf_i = 0
        self._buf: deque[tuple[str, BlockFile]] = deque()

    @property
    def done(self) -> bool:
        return self.pos[0] >= len(self.dirs) and not self._buf

    def progress(self) -> float:
        """0.0 to 1.0, by directory, then by <aa>/<bb> within it."""
        d, _ = self.pos
        if d >= len(self.dirs):
            return 1.0
        inner = self._leaf_i / len(self._leaves) if self._leaves else 0.0
        return (d + inner) / len(self.dirs)

    def next_batch(self, n: int) -> list[BlockFile]:
        """Up to n more block files ([] once every dir is walked)."""
        out: list[BlockFile] = []
        while len(out) < n:
            if not self._buf and not self._fill():
                break
            rel, f = self._buf.popleft()
            self.pos = (self.pos[0], rel)
            out.append(f)
        return out

    def _fill(self) -> bool:
        while self.pos[0] < len(self.dirs):
            d, after = self.pos
            base = self.dirs[d]
            if self._leaves is None:
                self._leaves = [f"{a}/{b}" for a in _hex_subdirs(base)
                                for b in _hex_subdirs(f"{base}/{a}")]
                start = after[:5]
                self._leaf_i = next((i for i, leaf in enumerate(self._leaves)
                                     if leaf >= start), len(self._leaves))
            while self._leaf_i < len(self._leaves):
                leaf = self._leaves[self._leaf_i]
                self._leaf_i += 1
                for name in self._names(f"{base}/{leaf}"):
                    rel = f"{leaf}/{name}"
                    m = _BLOCK_NAME.fullmatch(name)
                    if rel > after and m:
                        self._buf.append((rel, BlockFile(f"{base}/{rel}",
                                                         bytes.fromhex(m.group(1)), base)))
                if self._buf:
                    return True
            self.pos, self._leaves, self._leaf_i = (d + 1, ""), None, 0
        return False

    @staticmethod
    def _names(path: str) -> list[str]:
        try:
            with os.scandir(path) as it:
                return sorted(e.name for e in it if e.is_file(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []
