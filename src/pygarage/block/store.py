"""Block files on local disks: <data_dir>/<aa>/<bb>/<hash hex>[.zst], written atomically."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
from pathlib import Path

from ..util.config import DataDir
from .block import DataBlock

# What write() leaves behind when the process dies between create and rename.
_TMP_NAME = re.compile(r"[0-9a-f]{64}(?:\.zst)?\.tmp[0-9a-z]*")
_HEX2 = re.compile(r"[0-9a-f]{2}")


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
        # Temporary names: unique per store, no system call (secrets) per block.
        self._tmp_prefix = secrets.token_hex(4)
        self._tmp_seq = itertools.count()

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

    def write(self, h: bytes, block: DataBlock, absent: bool = False) -> None:
        """Blocking: call from a worker thread. temp file + fsync + rename: never a torn
        block under its final name. absent: the caller has just seen no copy of the block
        (and no other write of it can run meanwhile), so there is no other copy to drop."""
        plain = f"{self._primary(h)}/{self._rel(h)}"
        path = plain + ".zst" if block.compressed else plain
        tmp = f"{path}.tmp{self._tmp_prefix}{next(self._tmp_seq)}"
        # Plain os calls, not open(): fewer system calls (each a GIL hand-off) per block.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileNotFoundError:  # the first block of its <aa>/<bb> directory
            d = os.path.dirname(path)
            try:
                os.mkdir(d)
            except FileNotFoundError:  # <aa> is new too
                os.makedirs(d, exist_ok=True)
            except FileExistsError:
                pass
            if self.fsync:  # the new directories' own entries must reach the disk too
                _fsync_dir(os.path.dirname(d))
                _fsync_dir(os.path.dirname(os.path.dirname(d)))
            fd = os.open(tmp, flags, 0o666)
        try:
            try:
                view = memoryview(block.payload)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:  # the rename itself is durable only once its directory is synced
            _fsync_dir(os.path.dirname(path))
        # A plain and a compressed copy may both exist after a level change: keep one.
        other = plain if block.compressed else plain + ".zst"
        if not absent and os.path.exists(other):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(other)

    def remove_stray_temp_files(self) -> int:
        """Blocking, for startup: delete the temporary files of writes interrupted by a
        crash (never renamed, so never a block). Only <aa>/<bb>/ names of write()'s form,
        and never this process's own (a write may be in progress). -> how many."""
        removed = 0
        own = f".tmp{self._tmp_prefix}"
        for base in self._writable_strs:
            for d1 in _subdirs(base):
                for d2 in _subdirs(d1):
                    with os.scandir(d2) as it:
                        for e in it:
                            if _TMP_NAME.fullmatch(e.name) and own not in e.name \
                                    and e.is_file(follow_symlinks=False):
                                with contextlib.suppress(FileNotFoundError):
                                    os.unlink(e.path)
                                    removed += 1
        return removed

    def read(self, h: bytes) -> DataBlock | None:
        # Open directly, in _locate's order, instead of stat then open: fewer system calls
        # (each one a GIL release in the reading thread) per block.
        rel = self._rel(h)
        primary = self._primary(h)
        for base in (primary, *[d for d in self._dir_strs if d != primary]):
            p = f"{base}/{rel}"
            for path, compressed in ((p + ".zst", True), (p, False)):
                try:
                    fd = os.open(path, os.O_RDONLY)
                except (FileNotFoundError, NotADirectoryError):  # as exists() said no
                    continue
                try:
                    return DataBlock(compressed, _read_fd(fd))
                finally:
                    os.close(fd)
        return None

    def delete(self, h: bytes) -> None:
        while (found := self.find(h)) is not None:
            found[0].unlink(missing_ok=True)

    def move_corrupted(self, h: bytes) -> None:
        found = self.find(h)
        if found:
            os.replace(found[0], found[0].with_name(found[0].name + ".corrupted"))


def _subdirs(path: str) -> list[str]:
    """The <aa> (or <bb>) directories of a data dir level."""
    try:
        with os.scandir(path) as it:
            return [e.path for e in it
                    if _HEX2.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _read_fd(fd: int) -> bytes:
    """The whole file: block files never change once in place (callers verify the hash)."""
    size = os.fstat(fd).st_size
    data = os.read(fd, size)
    if len(data) < size:  # a short read: finish the slow way
        parts = [data]
        while more := os.read(fd, size):
            parts.append(more)
        data = b"".join(parts)
    return data


def _fsync_dir(path: str) -> None:
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
