"""Block files on local disks: <data_dir>/<aa>/<bb>/<hash hex>[.zst], written atomically."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from ..util.config import DataDir
from .block import DataBlock


class BlockStore:
    def __init__(self, data_dirs: tuple[DataDir, ...], fsync: bool):
        self.dirs = data_dirs
        self.writable = [d.path for d in data_dirs if not d.read_only]
        self.fsync = fsync
        for d in data_dirs:
            d.path.mkdir(parents=True, exist_ok=True)
        # Paths as plain strings, not pathlib: they are built for every block read and write.
        self._dir_strs = [str(d.path) for d in data_dirs]
        self._writable_strs = [str(p) for p in self.writable]

    def _primary(self, h: bytes) -> str:
        # Spread partitions over writable dirs; reads also look in every other dir.
        return self._writable_strs[h[0] % len(self._writable_strs)]

    @staticmethod
    def _rel(h: bytes) -> str:
        hx = h.hex()
        return f"{hx[:2]}/{hx[2:4]}/{hx}"

    def has(self, h: bytes) -> bool:
        return self._locate(h) is not None

    def find(self, h: bytes) -> tuple[Path, bool] | None:
        found = self._locate(h)
        return None if found is None else (Path(found[0]), found[1])

    def _locate(self, h: bytes) -> tuple[str, bool] | None:
        rel = self._rel(h)
        primary = self._primary(h)
        for base in (primary, *[d for d in self._dir_strs if d != primary]):
            p = f"{base}/{rel}"
            if os.path.exists(p + ".zst"):
                return p + ".zst", True
            if os.path.exists(p):
                return p, False
        return None

    def write(self, h: bytes, block: DataBlock) -> None:
        """Blocking: call from a worker thread. temp file + fsync + rename: never a torn
        block under its final name."""
        plain = f"{self._primary(h)}/{self._rel(h)}"
        path = plain + ".zst" if block.compressed else plain
        tmp = f"{path}.tmp{secrets.token_hex(4)}"
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:  # the first block of its <aa>/<bb> directory
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(block.payload)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if self.fsync:
            dfd = os.open(os.path.dirname(path), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        # A plain and a compressed copy may both exist after a level change: keep one.
        other = plain if block.compressed else plain + ".zst"
        if os.path.exists(other):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(other)

    def read(self, h: bytes) -> DataBlock | None:
        found = self._locate(h)
        if found is None:
            return None
        path, compressed = found
        try:
            with open(path, "rb") as f:
                return DataBlock(compressed, f.read())
        except FileNotFoundError:
            return None

    def delete(self, h: bytes) -> None:
        while (found := self.find(h)) is not None:
            found[0].unlink(missing_ok=True)

    def move_corrupted(self, h: bytes) -> None:
        found = self.find(h)
        if found:
            os.replace(found[0], found[0].with_name(found[0].name + ".corrupted"))
