"""Non-blocking reads (util/nowait): answered from the kernel's caches, or BlockingIOError
(never a wait for the disk), whatever the kernel has in memory."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pygarage.block.block import DataBlock, pack_block
from pygarage.block.store import BlockStore
from pygarage.testing import pagecache
from pygarage.util import nowait
from pygarage.util.config import DataDir

pytestmark = pytest.mark.skipif(not nowait.available(), reason="needs Linux openat2")


def _refused_once_evicted(path: Path, attempt: Callable[[], object], want: object) -> None:
    """Evict and attempt until the read is refused (BlockingIOError); an attempt that
    succeeds (the readahead it started finished first, see testing/pagecache) must give
    `want`. A disk that always wins that race skips the test: the refusal's handling is
    tested without it (test_block_nowait, a refusal simulated)."""
    for _ in range(pagecache.TRIES):
        pagecache.evict(path)
        try:
            got = attempt()
        except BlockingIOError:
            return
        assert got == want
    pytest.skip(f"the disk answered before the kernel's second look {pagecache.TRIES} times")


def test_cached_file_is_read(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 1000)
    fd = nowait.open_cached(str(p))
    try:
        assert nowait.read_cached(fd, 3000) == b"abc" * 1000
        with pytest.raises(BlockingIOError):  # larger than asked for: a thread's job
            nowait.read_cached(fd, 2999)
    finally:
        os.close(fd)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "e"
    p.write_bytes(b"")
    fd = nowait.open_cached(str(p))
    try:
        assert nowait.read_cached(fd, 10) == b""
    finally:
        os.close(fd)


def test_pages_not_in_memory_are_not_waited_for(tmp_path: Path) -> None:
    p = tmp_path / "f"
    data = os.urandom(16384)
    p.write_bytes(data)
    fd = nowait.open_cached(str(p))
    try:
        _refused_once_evicted(p, lambda: nowait.read_cached(fd, 65536), data)
        os.pread(fd, 16384, 0)  # read the slow way: cached again
        assert len(nowait.read_cached(fd, 65536)) == 16384
    finally:
        os.close(fd)


def test_a_name_never_looked_up_is_not_waited_for(tmp_path: Path) -> None:
    # A missing name: only a lookup that went to the file system leaves the negative
    # entry that answers "no such file" from memory.
    missing = str(tmp_path / "nope")
    with pytest.raises(BlockingIOError):
        nowait.open_cached(missing)
    assert not os.path.exists(missing)
    with pytest.raises(FileNotFoundError):
        nowait.open_cached(missing)


def test_refusing_kernel_disables_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refused(*_: Any) -> int:
        ctypes.set_errno(errno.ENOSYS)
        return -1
    monkeypatch.setattr(nowait, "_syscall", refused)
    monkeypatch.setattr(nowait, "_enabled", True)
    p = tmp_path / "f"
    p.write_bytes(b"x")
    with pytest.raises(BlockingIOError):
        nowait.open_cached(str(p))
    assert not nowait.available()
    with pytest.raises(BlockingIOError):  # from now on without asking the kernel
        nowait.open_cached(str(p))


def test_file_of_another_owner_is_read_without_noatime(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    calls: list[int] = []
    real = nowait._syscall
    assert real is not None

    def no_noatime(nr: int, dirfd: int, path: bytes, how: Any, size: Any) -> int:
        flags = int.from_bytes(how.raw[:8], "little")
        calls.append(flags)
        if flags & nowait._O_NOATIME:
            ctypes.set_errno(errno.EPERM)
            return -1
        return int(real(nr, dirfd, path, how, size))
    monkeypatch.setattr(nowait, "_syscall", no_noatime)
    monkeypatch.setattr(nowait, "_noatime", nowait._O_NOATIME)
    p = tmp_path / "f"
    p.write_bytes(b"data")
    fd = nowait.open_cached(str(p))
    os.close(fd)
    assert nowait.available()
    assert len(calls) == 2 and calls[0] & nowait._O_NOATIME and not calls[1] & nowait._O_NOATIME


def _store(tmp_path: Path) -> tuple[BlockStore, bytes, DataBlock]:
    st = BlockStore((DataDir(tmp_path / "data"),), fsync=False)
    h, block = pack_block(os.urandom(4096), 1)
    st.write(h, block, absent=True)
    return st, h, block


def test_store_reads_a_plain_block_whose_compressed_name_is_unknown(tmp_path: Path) -> None:
    st, h, block = _store(tmp_path)
    assert not block.compressed
    # Written into a new directory: "<hash>.zst" was never looked up there.
    assert st.read_nowait(h, 65536) == block
    with pytest.raises(BlockingIOError):
        st.read_nowait(h, 4095)


def test_store_missing_block_only_when_sure(tmp_path: Path) -> None:
    st, h, _ = _store(tmp_path)
    other = bytes(32)  # never written, never looked up
    with pytest.raises(BlockingIOError):
        st.read_nowait(other, 65536)
    assert not st.has(other)  # the real lookups leave negative entries
    assert st.read_nowait(other, 65536) is None
    st.delete(h)
    assert st.read_nowait(h, 65536) is None


def test_store_block_evicted_from_memory_goes_to_the_thread(tmp_path: Path) -> None:
    st, h, block = _store(tmp_path)
    found = st.find(h)
    assert found is not None
    _refused_once_evicted(found[0], lambda: st.read_nowait(h, 65536), block)
    assert st.read(h) == block


@pytest.mark.parametrize("where", ["open", "read"])
def test_store_leaves_other_errors_to_the_thread(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path, where: str) -> None:
    # A file system without RWF_NOWAIT (EOPNOTSUPP), a permission error: the thread's
    # read, the one that was always there, meets them and answers as it always did.
    st, h, block = _store(tmp_path)

    def refuse(*_: Any) -> Any:
        raise OSError(errno.EOPNOTSUPP if where == "read" else errno.EACCES, "refused")
    monkeypatch.setattr(nowait, "read_cached" if where == "read" else "open_cached", refuse)
    with pytest.raises(BlockingIOError):
        st.read_nowait(h, 65536)
    assert st.read(h) == block
