"""The block write helper process (block/write_helper.py): a real helper on a real directory,
and a real node whose helper is killed."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pygarage.block.block import DataBlock
from pygarage.block.write_helper import (
    FAILED,
    MAX_BLOCK,
    OK,
    WriteHelper,
    WriteHelperGone,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)
from pygarage.testing.node import GarageNode
from pygarage.util.ids import block_hash


def test_codec_round_trips_and_refuses_garbage() -> None:
    h = block_hash(b"x")
    head, payload = encode_request(7, h, DataBlock(True, b"zstd frame"))
    assert decode_request(head + payload) == (7, h, DataBlock(True, b"zstd frame"))
    assert decode_request(encode_request(2**64 - 1, h, DataBlock(False, b""))[0]) == \
        (2**64 - 1, h, DataBlock(False, b""))
    assert decode_reply(encode_reply(3, FAILED, errno.ENOSPC, "No space left\n")) == \
        (3, FAILED, errno.ENOSPC, "No space left\n")
    assert decode_reply(encode_reply(4, OK)) == (4, OK, 0, "")
    with pytest.raises(ValueError):
        encode_request(1, b"short", DataBlock(False, b""))
    for bad in (b"", head[:-1], head[:8] + b"\x02" + head[9:]):
        with pytest.raises(ValueError):
            decode_request(bad)
    for bad in (b"", encode_reply(1, OK)[:-1], encode_reply(1, OK)[:8] + b"\x07" +
                encode_reply(1, OK)[9:]):
        with pytest.raises(ValueError):
            decode_reply(bad)


def _path(root: Path, data: bytes) -> Path:
    hx = block_hash(data).hex()
    return root / hx[:2] / hx[2:4] / hx


def test_helper_writes_deduplicates_reports_errors_and_dies_cleanly(tmp_path: Path) -> None:
    async def go() -> None:
        helper = WriteHelper(str(tmp_path))
        try:
            data = os.urandom(4096)
            assert await helper.write(block_hash(data), DataBlock(False, data)) is False
            assert _path(tmp_path, data).read_bytes() == data
            ino = _path(tmp_path, data).stat().st_ino
            # Same content again: deduplicated, not rewritten.
            assert await helper.write(block_hash(data), DataBlock(False, data)) is False
            assert _path(tmp_path, data).stat().st_ino == ino
            # A damaged copy (truncated, as a power loss leaves it) is written again.
            _path(tmp_path, data).write_bytes(data[:100])
            assert await helper.write(block_hash(data), DataBlock(False, data)) is True
            assert _path(tmp_path, data).read_bytes() == data
            # Many at once, as concurrent PUTs send them.
            many = [os.urandom(MAX_BLOCK) for _ in range(40)]
            await asyncio.gather(*(helper.write(block_hash(d), DataBlock(False, d))
                                   for d in many))
            assert all(_path(tmp_path, d).read_bytes() == d for d in many)
            # The OS error of the write comes back as that OSError: here a file stands
            # where the block's directory must be.
            blocked = os.urandom(4096)
            top = _path(tmp_path, blocked).parent.parent
            if not top.exists():
                top.write_bytes(b"not a directory")
                with pytest.raises(OSError) as e:
                    await helper.write(block_hash(blocked), DataBlock(False, blocked))
                assert e.value.errno in (errno.ENOTDIR, errno.EEXIST)
                assert helper.alive  # an error is not a crash
            # kill -9: the write in flight and the next ones say so (the caller uses its
            # threads instead).
            os.kill(helper.proc.pid, signal.SIGKILL)
            later = os.urandom(4096)
            with pytest.raises(WriteHelperGone):
                for _ in range(200):  # until the node's side sees the end of the socket
                    await helper.write(block_hash(later), DataBlock(False, later))
                    await asyncio.sleep(0.01)
            assert not helper.alive
        finally:
            await helper.close()
        assert helper.proc.returncode is not None

    asyncio.run(go())


def _helpers_of(pid: int) -> list[int]:
    """The write helper processes whose parent is `pid`."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"pygarage.block.write_helper" in cmd:
            found.append(int(p))
    return found


def test_node_writes_small_blocks_through_its_helper_and_survives_losing_it(
        tmp_path: Path) -> None:
    node = GarageNode(tmp_path / "n")
    node.start()
    try:
        key_id, secret = node.create_key("k")
        node.create_bucket("helper-test", key_id)
        s3: Any = node.s3(key_id, secret)
        proc = node.proc
        assert proc is not None
        helpers = _helpers_of(proc.pid)
        assert len(helpers) == 1
        objects = {f"k{i}": os.urandom(4096) for i in range(20)}
        for k, v in objects.items():
            s3.put_object(Bucket="helper-test", Key=k, Body=v)
        # A SIGTERM sent to the whole group (a service manager stopping the node) leaves
        # it to the node to stop its helper once its last writes are answered.
        os.kill(helpers[0], signal.SIGTERM)
        objects["after-term"] = os.urandom(4096)
        s3.put_object(Bucket="helper-test", Key="after-term", Body=objects["after-term"])
        assert _helpers_of(proc.pid) == helpers
        os.kill(helpers[0], signal.SIGKILL)
        for i in range(20, 40):  # the node's threads take over
            objects[f"k{i}"] = os.urandom(4096)
            s3.put_object(Bucket="helper-test", Key=f"k{i}", Body=objects[f"k{i}"])
        for k, v in objects.items():
            assert s3.get_object(Bucket="helper-test", Key=k)["Body"].read() == v
            assert _path(node.root / "data", v).read_bytes() == v
        log = node.log_path.read_text()
        # One line, whichever way the node noticed first (the end of the socket, a reset
        # of it, a failed send).
        lines = [ln for ln in log.splitlines() if "block write helper:" in ln]
        assert len(lines) == 1 and " ERROR " in lines[0], lines
        assert lines[0].endswith("small blocks are written by threads from now on")
        assert "Traceback" not in log
    finally:
        node.stop()
    assert proc.returncode == 0  # a clean stop without its helper too


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")


def test_a_stopped_node_leaves_no_helper_behind(tmp_path: Path) -> None:
    node = GarageNode(tmp_path / "n")
    node.start()
    assert node.proc is not None
    pid = node.proc.pid
    helpers = _helpers_of(pid)
    assert len(helpers) == 1
    node.stop()
    _wait_gone(helpers[0])


def test_a_killed_node_leaves_no_helper_behind(tmp_path: Path) -> None:
    node = GarageNode(tmp_path / "n")
    node.start()
    assert node.proc is not None
    helpers = _helpers_of(node.proc.pid)
    assert len(helpers) == 1
    node.kill()  # kill -9: the helper sees its socket closed and exits
    _wait_gone(helpers[0])


def _ignores(pid: int, sig: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_a_killed_node_takes_even_a_stuck_helper_with_it(tmp_path: Path) -> None:
    """A helper that cannot run (stopped here; stuck, in life) never sees its socket close:
    the kernel kills it when the node dies."""
    node = GarageNode(tmp_path / "n")
    node.start()
    assert node.proc is not None
    helpers = _helpers_of(node.proc.pid)
    assert len(helpers) == 1
    # Once it ignores SIGTERM, it has asked the kernel for that (main() does it first).
    deadline = time.monotonic() + 10
    while not _ignores(helpers[0], signal.SIGTERM):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(helpers[0], signal.SIGSTOP)
    try:
        node.kill()
        _wait_gone(helpers[0])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(helpers[0], signal.SIGKILL)


def test_helper_exits_on_a_request_it_cannot_read(tmp_path: Path) -> None:
    """Only a bug of the node could send one: the helper stops (no answer would ever come)
    and the node, seeing its socket closed, writes with its threads."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pygarage.block.write_helper", str(theirs.fileno()),
             str(tmp_path)], pass_fds=[theirs.fileno()], stderr=subprocess.PIPE)
        theirs.close()
        ours.send(b"too short")
        assert proc.wait(10) == 70
        assert proc.stderr is not None and proc.stderr.read() == b""  # no traceback
        assert ours.recv(100) == b""
