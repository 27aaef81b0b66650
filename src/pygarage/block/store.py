"""Block files on local disks: <data_dir>/<aa>/<bb>/<hash hex>[.zst], written atomically."""

from __future__ import annotations

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

    def _primary(self, h: bytes) -> Path:
        # Spread partitions over writable dirs; reads also look in every other dir.
        return self.writable[h[0] % len(self.writable)]

    @staticmethod
    def _rel(h: bytes) -> Path:
        hx = h.hex()
        return Path(hx[:2]) / hx[2:4] / hx

    def find(self, h: bytes) -> tuple[Path, bool] | None:
        rel = self._rel(h)
        primary = self._primary(h)
        for base in [primary] + [d.path for d in self.dirs if d.path != primary]:
            p = base / rel
            z = p.with_name(p.name + ".zst")
            if z.exists():
                return z, True
            if p.exists():
                return p, False
        return None

    def write(self, h: bytes, block: DataBlock) -> None:
        """Blocking: call from a worker thread. temp file + fsync + rename: never a torn
        block under its final name."""
        path = self._primary(h) / self._rel(h)
        if block.compressed:
            path = path.with_name(path.name + ".zst")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{secrets.token_hex(4)}")
        with open(tmp, "wb") as f:
            f.write(block.payload)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if self.fsync:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        # A plain and a compressed copy may both exist after a level change: keep one.
        other = path.with_name(path.name[:-4]) if block.compressed else \
            path.with_name(path.name + ".zst")
        if other.exists():
            other.unlink(missing_ok=True)

    def read(self, h: bytes) -> DataBlock | None:
        found = self.find(h)
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
