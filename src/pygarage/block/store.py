"""Block files on local disks: <data_dir>/<aa>/<bb>/<hash hex>[.zst], written atomically."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import secrets
from pathlib import Path

from ..util import nowait
from ..util.atomic_file import write_atomic
from ..util.config import ConfigError, DataDir
from ..util.errors import CorruptData
from .block import DataBlock, unpack_block
from .layout import N_SLOTS, SINGLE_DIR_CAPACITY, DataLayout, LayoutDir

log = logging.getLogger(__name__)

# What write() leaves behind when the process dies between create and rename.
_TMP_NAME = re.compile(r"[0-9a-f]{64}(?:\.zst)?\.tmp[0-9a-z]*")
_HEX2 = re.compile(r"[0-9a-f]{2}")


class BlockStore:
    def __init__(self, data_dirs: tuple[DataDir, ...], fsync: bool,
                 layout_file: Path | None = None):
        """layout_file: where the data layout persists (metadata_dir/data_layout); None
        (unit tests): computed from scratch each time."""
        self.dirs = data_dirs
        self.fsync = fsync
        self.layout_file = layout_file
        for d in data_dirs:
            if not d.read_only:
                d.path.mkdir(parents=True, exist_ok=True)
        self._use_layout(self._load_layout())
        # Temporary names: unique per store, no system call (secrets) per block.
        self._tmp_prefix = secrets.token_hex(4)
        self._tmp_seq = itertools.count()

    def _load_layout(self) -> DataLayout:
        dirs = [LayoutDir(str(d.path), None if d.read_only else
                          (d.capacity or SINGLE_DIR_CAPACITY)) for d in self.dirs]
        old = None
        if self.layout_file is not None and self.layout_file.exists():
            try:
                old = DataLayout.decode(self.layout_file.read_bytes())
            except (ValueError, TypeError) as e:  # refuse to start rather than guess
                raise ConfigError(f"{self.layout_file}: {e} (move it aside to start over: "
                                  "every data dir is then searched for blocks)") from None
        new = DataLayout.initialize(dirs, _has_blocks) if old is None \
            else old.updated(dirs, _has_blocks)
        if new is not old:
            if old is not None:
                log.info("data directories changed: %d of %d block slots now go to another "
                         "directory (`garage repair rebalance` moves their blocks there)",
                         _moved(old, new), N_SLOTS)
            self._save_layout(new)
        return new

    def _save_layout(self, layout: DataLayout) -> None:
        if self.layout_file is not None:
            write_atomic(self.layout_file, layout.encode(), 0o644)

    def set_layout(self, layout: DataLayout) -> None:
        """Blocking (an fsync): persist, then use, a new layout (rebalance done)."""
        self._save_layout(layout)
        self._use_layout(layout)

    def _use_layout(self, layout: DataLayout) -> None:
        self.layout = layout
        self._dir_strs = [d.path for d in layout.dirs]
        # Worked out once per layout: the write path asks for it on every small block.
        one = len(layout.dirs) == 1 and layout.dirs[0].writable and not any(layout.sec)
        self._single_dir = layout.dirs[0].path if one else None

    def _bases(self, h: bytes) -> list[str]:
        """Where the block may be: its primary dir first, then the secondaries."""
        lay = self.layout
        return [self._dir_strs[lay.primary(h)], *[self._dir_strs[i]
                                                  for i in lay.secondaries(h)]]

    def _primary(self, h: bytes) -> str:
        return self._dir_strs[self.layout.primary(h)]

    def primary_dir(self, h: bytes) -> str:
        """The <data dir>/<aa>/<bb> directory where `h` belongs."""
        hx = h.hex()
        return f"{self._primary(h)}/{hx[:2]}/{hx[2:4]}"

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
        for base in self._bases(h):
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

    def write_if_absent(self, h: bytes, block: DataBlock) -> bool:
        """Blocking: store the block unless a sound copy is here already (deduplication).
        -> True if a damaged copy was found and written again (for the caller to log).
        Run by the block manager's threads and by the write helper process alike."""
        found = self.find(h)
        if found is None:
            self.write(h, block, absent=True)
            return False
        if not self.fsync and not self._existing_is_sound(h, block):
            self.write(h, block)
            return True
        # Deduplicated (same content, same address). Its time is refreshed: resync never
        # deletes a file this young, so a write whose reference is still on its way keeps
        # the block (block and reference writes run concurrently).
        try:
            os.utime(found[0])
        except FileNotFoundError:
            self.write(h, block)
        return False

    def _existing_is_sound(self, h: bytes, block: DataBlock) -> bool:
        """Without data_fsync, a power loss can leave a block file truncated or empty under
        its final name (the rename reached the disk before the data): check the copy on
        disk, length then hash, before trusting it to deduplicate a write."""
        found = self.read(h)
        if found is None:
            return False
        if not found.compressed and not block.compressed and \
                len(found.payload) != len(block.payload):
            return False
        try:
            unpack_block(h, found)
        except CorruptData:
            return False
        return True

    def single_dir(self) -> str | None:
        """The data directory, if there is exactly one and every block belongs in it."""
        return self._single_dir

    def remove_stray_temp_files(self) -> int:
        """Blocking, for startup: delete the temporary files of writes interrupted by a
        crash (never renamed, so never a block). Only <aa>/<bb>/ names of write()'s form,
        and never this process's own (a write may be in progress). -> how many."""
        removed = 0
        own = f".tmp{self._tmp_prefix}"
        for base in self.writable_dirs():
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
        opened = self.open_local(h)
        if opened is None:
            return None
        fd, compressed = opened
        try:
            return DataBlock(compressed, read_fd(fd))
        finally:
            os.close(fd)

    def read_nowait(self, h: bytes, max_size: int) -> DataBlock | None:
        """Not blocking: a local copy (unverified), if one is at most max_size bytes and
        the kernel has its path and bytes in memory; None if the kernel knows there is
        none. Raises BlockingIOError otherwise (read() it in a thread). A name whose lookup
        would need the disk is skipped rather than waited for: the compressed name of a
        plain block was never looked up in its new directory, say. Any copy found is the
        block (the caller verifies it), even if another name was not checked."""
        rel = self._rel(h)
        unsure = False
        for base in self._bases(h):
            p = f"{base}/{rel}"
            for path, compressed in ((p + ".zst", True), (p, False)):
                try:
                    fd = nowait.open_cached(path)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError:  # needs the disk, or an error the thread is to meet
                    unsure = True
                    continue
                try:
                    return DataBlock(compressed, nowait.read_cached(fd, max_size))
                except OSError:  # not all cached, too large, or no RWF_NOWAIT here
                    raise BlockingIOError("not in the page cache") from None
                finally:
                    os.close(fd)
        if unsure:
            raise BlockingIOError("the lookup needs the disk")
        return None

    def open_local(self, h: bytes) -> tuple[int, bool] | None:
        """Blocking: (open fd, compressed) of the local copy, or None. The caller owns the
        fd: the inode stays the same whatever is renamed meanwhile. Opened directly, in
        _locate's order, instead of stat then open: fewer system calls (each one a GIL
        release in the reading thread) per block."""
        rel = self._rel(h)
        for base in self._bases(h):
            p = f"{base}/{rel}"
            for path, compressed in ((p + ".zst", True), (p, False)):
                try:
                    return os.open(path, os.O_RDONLY), compressed
                except (FileNotFoundError, NotADirectoryError):  # as exists() said no
                    continue
        return None

    def writable_dirs(self) -> list[str]:
        return [d.path for d in self.layout.dirs if d.writable]

    def all_dirs(self) -> list[str]:
        return list(self._dir_strs)

    @staticmethod
    def read_file(path: str) -> DataBlock:
        """Blocking: the block file at `path` (a .zst name is compressed), unverified."""
        fd = os.open(path, os.O_RDONLY)
        try:
            return DataBlock(path.endswith(".zst"), read_fd(fd))
        finally:
            os.close(fd)

    def remove_file(self, path: str) -> None:
        """Blocking: drop one copy of a block (e.g. once moved to its primary dir)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if self.fsync:
            _fsync_dir(os.path.dirname(path))

    def delete(self, h: bytes) -> None:
        """Blocking: every copy of the block, plain or compressed, in the writable dirs it
        may be in (read-only dirs are never written to)."""
        rel = self._rel(h)
        writable = set(self.writable_dirs())
        for base in self._bases(h):
            if base in writable:
                for suffix in ("", ".zst"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{base}/{rel}{suffix}")

    def move_corrupted(self, h: bytes, path: str | None = None) -> None:
        """Rename the block's file (the one at `path`, or the first found) out of the way:
        kept for inspection, never read again as the block (left alone in a read-only
        dir)."""
        if path is None:
            found = self.find(h)
            if not found:
                return
            path = str(found[0])
        base = os.path.dirname(os.path.dirname(os.path.dirname(path)))
        if base not in self.writable_dirs():
            return  # a read-only dir is never written to
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, path + ".corrupted")


def _moved(old: DataLayout, new: DataLayout) -> int:
    return sum(old.dirs[a].path != new.dirs[b].path
               for a, b in zip(old.prim, new.prim, strict=True))


def _has_blocks(path: str) -> bool:
    """Does this data dir hold block directories (<aa>/) already?"""
    return bool(_subdirs(path))


def _subdirs(path: str) -> list[str]:
    """The <aa> (or <bb>) directories of a data dir level."""
    try:
        with os.scandir(path) as it:
            return [e.path for e in it
                    if _HEX2.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def read_fd(fd: int) -> bytes:
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
