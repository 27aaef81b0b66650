"""Small block writes in a helper process, so that their file system work never competes
with the event loop for the GIL.

A 4 KiB block write is a handful of system calls (stat, open, write, close, rename, often
a mkdir). In a worker thread each of them gives the GIL away and waits to take it back
from the busy event loop, and the thread hand-overs cost the loop more than the calls
themselves: in a same-run A/B (bench/ab_small.py), a node stored 4 KiB PUTs at 1.44 times
the rate with the writes in a helper. The helper runs BlockStore.write_if_absent, the very
code the threads run, on the node's single data directory, in a few threads of its own;
the node sends it each block over a SOCK_SEQPACKET socket (one message per block) and
awaits its one-message answer.

Only blocks of at most MAX_BLOCK bytes go this way, and only when there is one data
directory (the helper knows no data layout) and data_fsync is off (with it, each write
waits on the disk far longer than on the GIL). If the helper dies, its pending writes and
all the next ones go through the node's threads again (writes are idempotent), with one
error logged. The helper exits when the node closes its end of the socket, or dies (kill
-9 included); on Linux the kernel also kills it when the node dies, should the helper be
stuck and never see its socket close.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import itertools
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .block import DataBlock

if TYPE_CHECKING:
    from .store import BlockStore

log = logging.getLogger(__name__)

MAX_BLOCK = 64 * 1024
# Writes in flight in the helper: one waiting on a slow disk does not hold up the next.
# More cost CPU for nothing on a fast one (same-run A/B against 1: 2 gave 1.01x the
# PUT rate, 4 gave 0.93x).
THREADS = 2
HASH_LEN = 32
# Request: id, flags (1 = compressed), block hash; the payload follows.
_REQ = struct.Struct(f"<QB{HASH_LEN}s")
# Reply: id, status, errno; for an error, its text follows (UTF-8).
_REP = struct.Struct("<QBi")
OK, REWRITTEN, FAILED = 0, 1, 2
_SOCK_BUF = 1 << 20  # room for the blocks of many concurrent writes
_PR_SET_PDEATHSIG = 1  # prctl(2), Linux


class WriteHelperGone(Exception):
    """The helper is not running: write the block another way."""


def encode_request(rid: int, h: bytes, block: DataBlock) -> list[bytes]:
    if len(h) != HASH_LEN:
        raise ValueError(f"block hash of {len(h)} bytes")
    return [_REQ.pack(rid, 1 if block.compressed else 0, h), block.payload]


def decode_request(msg: bytes) -> tuple[int, bytes, DataBlock]:
    if len(msg) < _REQ.size:
        raise ValueError(f"request of {len(msg)} bytes")
    rid, flags, h = _REQ.unpack_from(msg)
    if flags not in (0, 1):
        raise ValueError(f"request flags {flags}")
    return rid, h, DataBlock(flags == 1, msg[_REQ.size:])


def encode_reply(rid: int, status: int, err: int = 0, text: str = "") -> bytes:
    return _REP.pack(rid, status, err) + text.encode("utf-8", "backslashreplace")


def decode_reply(msg: bytes) -> tuple[int, int, int, str]:
    if len(msg) < _REP.size:
        raise ValueError(f"reply of {len(msg)} bytes")
    rid, status, err = _REP.unpack_from(msg)
    if status not in (OK, REWRITTEN, FAILED):
        raise ValueError(f"reply status {status}")
    return rid, status, err, msg[_REP.size:].decode("utf-8", "replace")


# -- the helper process

def serve(sock: socket.socket, data_dir: str, threads: int = THREADS) -> None:
    """Answer write requests until the node closes the socket. Several threads, each
    taking whole messages from the socket: on a slow disk their waits overlap, as the
    node's own threads' did (the helper has little Python to run, so little GIL to share)."""
    from ..util.config import DataDir  # noqa: PLC0415 (the helper's own imports)
    from .store import BlockStore  # noqa: PLC0415
    store = BlockStore((DataDir(Path(data_dir)),), fsync=False)
    workers = [threading.Thread(target=_serve_one, args=(sock, store), daemon=True)
               for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def _serve_one(sock: socket.socket, store: BlockStore) -> None:
    try:
        while True:
            msg = sock.recv(_REQ.size + MAX_BLOCK)
            if not msg:
                return
            rid, h, block = decode_request(msg)
            try:
                reply = encode_reply(rid, REWRITTEN if store.write_if_absent(h, block)
                                     else OK)
            except OSError as e:
                reply = encode_reply(rid, FAILED, e.errno or errno.EIO,
                                     e.strerror or str(e))
            except Exception as e:  # noqa: BLE001 (the node reports it; the helper goes on)
                reply = encode_reply(rid, FAILED, errno.EIO, repr(e))
            sock.send(reply)
    except BaseException:  # a request it cannot read, the node gone: stop the helper, and
        os._exit(70)       # the node, seeing the socket closed, uses its own threads


def _die_with_node() -> None:
    """Linux: the kernel kills the helper (SIGKILL) when the node dies, even if the helper
    is stuck or stopped and would never see its socket close. The node starts it from its
    event loop's thread, which lives as long as the node (the signal follows the thread
    that started the child). A write cut short leaves a temporary file, which the node
    removes at its next start."""
    node = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the closed socket alone stops it
    if os.getppid() != node:  # the node died before the call
        os._exit(0)


def main(argv: list[str]) -> None:
    _die_with_node()
    # The node stops it, by closing the socket, once its last writes are answered. A
    # Ctrl-C, or a service manager's SIGTERM, sent to the whole group must not kill it
    # first (mid-write, with a traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, data_dir = int(argv[0]), argv[1]
    with socket.socket(fileno=fd) as sock:
        serve(sock, data_dir)


# -- the node's side

class WriteHelper:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.alive = False
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[tuple[int, int, str]]] = {}
        self._room: asyncio.Future[None] | None = None  # _room_future
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            for s in (ours, theirs):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCK_BUF)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCK_BUF)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pygarage.block.write_helper", str(theirs.fileno()),
                 data_dir], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._loop.add_reader(ours.fileno(), self._on_readable)
        self.alive = True

    async def write(self, h: bytes, block: DataBlock) -> bool:
        """BlockStore.write_if_absent(h, block), by the helper. Raises OSError as the call
        would, WriteHelperGone if the helper is not there to do it."""
        if not self.alive:
            raise WriteHelperGone()
        rid = next(self._ids)
        parts = encode_request(rid, h, block)
        fut: asyncio.Future[tuple[int, int, str]] = self._loop.create_future()
        self._waiting[rid] = fut
        try:
            await self._send(parts)
            status, err, text = await fut
        finally:
            self._waiting.pop(rid, None)
        if status == FAILED:
            raise OSError(err, text)
        return status == REWRITTEN

    async def _send(self, parts: list[bytes]) -> None:
        while True:
            if not self.alive:
                raise WriteHelperGone()
            try:
                self._sock.sendmsg(parts)
                return
            except BlockingIOError:  # the helper is behind: wait for room
                await asyncio.shield(self._room_future())
            except OSError as e:
                self._fail(f"sending to it failed: {e}")
                raise WriteHelperGone() from None

    def _room_future(self) -> asyncio.Future[None]:
        """Done once the socket can take a message again. One watcher for every waiting
        writer: the loop keeps a single writer callback per descriptor."""
        if self._room is None or self._room.done():
            room: asyncio.Future[None] = self._loop.create_future()
            fd = self._sock.fileno()

            def ready() -> None:
                self._loop.remove_writer(fd)
                if not room.done():
                    room.set_result(None)
            self._loop.add_writer(fd, ready)
            self._room = room
        return self._room

    def _on_readable(self) -> None:
        while self.alive:
            try:
                msg = self._sock.recv(4096)
            except BlockingIOError:
                return
            except OSError as e:
                self._fail(f"reading from it failed: {e}")
                return
            if not msg:
                self._fail(f"it exited (code {self.proc.poll()})")
                return
            try:
                rid, status, err, text = decode_reply(msg)
            except ValueError as e:
                self._fail(f"it answered nonsense: {e}")
                return
            fut = self._waiting.get(rid)
            if fut is not None and not fut.done():
                fut.set_result((status, err, text))

    def _fail(self, why: str) -> None:
        if not self.alive:
            return
        log.error("block write helper: %s; small blocks are written by threads from now on",
                  why)
        self._close_socket()

    def _close_socket(self) -> None:
        """No more writes through the helper: the ones waiting for an answer, or for room
        to send, end with WriteHelperGone."""
        self.alive = False
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())
        if self._room is not None and not self._room.done():
            self._room.set_result(None)  # its waiters find the helper gone
        self._sock.close()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(WriteHelperGone())

    async def close(self) -> None:
        """Stop the helper: it finishes the write in hand, sees the socket closed, exits."""
        if self.alive:
            self._close_socket()
        try:
            await asyncio.to_thread(self.proc.wait, 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)


def usable(data_fsync: bool) -> bool:
    """Can this machine and configuration use a helper at all?"""
    return not data_fsync and hasattr(socket, "SOCK_SEQPACKET") and sys.platform == "linux"


if __name__ == "__main__":
    main(sys.argv[1:])
