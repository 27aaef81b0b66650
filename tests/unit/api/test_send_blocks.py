"""send_blocks.send_body on a real aiohttp server: verified block files go out by sendfile
(counted), bytes as they are, ranges of files exact; where sendfile is unavailable the same
bytes are read from the open files and written; files are closed in every case."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import uvloop
from aiohttp import web

from pygarage.api.s3 import send_blocks
from pygarage.block.block_file import BlockFile
from pygarage.util import metrics


def _sendfile_count() -> float:
    v = metrics.REGISTRY.get_sample_value("block_bytes_sendfile_total")
    return v or 0.0


async def _serve(make_items: Callable[[], AsyncGenerator[tuple[send_blocks.Part, int, int],
                                                           None]],
                 size: int, client: Callable[[str], Awaitable[bytes]]) -> bytes:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return await send_blocks.send_body(request, 200, {"Content-Length": str(size)},
                                           make_items())
    runner = web.ServerRunner(web.Server(handler))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await client(f"http://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()


async def _fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        return await r.read()


async def _slow_fetch(url: str) -> bytes:
    """A client reading slowly at first: the server's socket fills up."""
    conn = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=conn) as s, \
            s.get(url, read_bufsize=16384) as r:
        out = bytearray()
        async for chunk in r.content.iter_chunked(65536):
            out += chunk
            if len(out) < (2 << 20):
                await asyncio.sleep(0.002)
        return bytes(out)


def _files(tmp_path: Path, contents: list[bytes]) -> list[Path]:
    out = []
    for i, c in enumerate(contents):
        p = tmp_path / f"f{i}"
        p.write_bytes(c)
        out.append(p)
    return out


@pytest.mark.parametrize("native", [True, False])
async def test_files_and_bytes_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        native: bool) -> None:
    contents = [os.urandom(1 << 20), os.urandom(300000), os.urandom(5000)]
    paths = _files(tmp_path, contents)
    opened: list[BlockFile] = []
    # (file index or bytes, skip, take)
    plan: list[tuple[int | bytes, int, int]] = [
        (0, 0, 1 << 20), (b"in between", 0, 10), (1, 1000, 250000), (2, 0, 5000),
        (b"0123456789", 3, 7)]
    expected = b"".join(contents[x][s:t] if isinstance(x, int) else x[s:t]
                        for x, s, t in plan)

    async def items() -> AsyncGenerator[tuple[send_blocks.Part, int, int], None]:
        for x, skip, take in plan:
            if isinstance(x, int):
                f = BlockFile(io.FileIO(paths[x], "rb"), 0, len(contents[x]))
                opened.append(f)
                yield f, skip, take
            else:
                yield x, skip, take

    if not native:  # as on a TLS transport: neither sendfile is possible
        monkeypatch.setattr(send_blocks, "_plain_socket", lambda _t: False)

        async def no_sendfile(*_a: object, **_k: object) -> int:
            raise NotImplementedError
        monkeypatch.setattr(asyncio.get_running_loop(), "sendfile", no_sendfile)
    before = _sendfile_count()
    got = await _serve(items, len(expected), _fetch)
    assert got == expected
    sent_by_kernel = _sendfile_count() - before
    assert sent_by_kernel == ((1 << 20) + 249000 + 5000 if native else 0)
    assert len(opened) == 3 and all(f.file.closed for f in opened)


async def test_slow_reader_gets_every_byte(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket cannot take a whole block at once: the rest waits for it (loop.sendfile)."""
    contents = [os.urandom(4 << 20) for _ in range(3)]
    paths = _files(tmp_path, contents)

    async def items() -> AsyncGenerator[tuple[send_blocks.Part, int, int], None]:
        for p, c in zip(paths, contents, strict=True):
            yield BlockFile(io.FileIO(p, "rb"), 0, len(c)), 0, len(c)

    loop = asyncio.get_running_loop()
    real_sendfile, waited = loop.sendfile, []

    async def counted(*a: object, **k: object) -> int:
        waited.append(a[2])  # the offset it resumes at
        return await real_sendfile(*a, **k)  # type: ignore[arg-type]
    monkeypatch.setattr(loop, "sendfile", counted)
    before = _sendfile_count()
    got = await _serve(items, sum(map(len, contents)), _slow_fetch)
    assert got == b"".join(contents)
    assert _sendfile_count() - before == 12 << 20
    assert waited and all(off > 0 for off in waited)  # each after a first partial send


async def test_client_gone_mid_body_closes_files(tmp_path: Path) -> None:
    contents = [os.urandom(4 << 20) for _ in range(4)]
    paths = _files(tmp_path, contents)
    opened: list[BlockFile] = []
    finished = asyncio.Event()

    async def items() -> AsyncGenerator[tuple[send_blocks.Part, int, int], None]:
        try:
            for p, c in zip(paths, contents, strict=True):
                f = BlockFile(io.FileIO(p, "rb"), 0, len(c))
                opened.append(f)
                yield f, 0, len(c)
        finally:
            finished.set()

    async def leave_mid_body(url: str) -> bytes:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(100000)
        writer.transport.abort()  # gone, most of the body unread
        async with asyncio.timeout(10):
            await finished.wait()
        for _ in range(500):  # the last close may follow the generator's end
            if all(f.file.closed for f in opened):
                break
            await asyncio.sleep(0.01)
        return b""
    await _serve(items, 16 << 20, leave_mid_body)
    assert opened and all(f.file.closed for f in opened)


# ------------------------------------------------------------------ on uvloop (the node's loop)
# uvloop has no loop.sendfile: send_blocks calls sendfile itself and waits for room in the
# socket through a duplicate descriptor. The same cases, on uvloop.

def _on_uvloop(coro: Awaitable[None]) -> None:
    async def main() -> None:
        await coro
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(main())


def test_uvloop_files_and_bytes_in_order(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _on_uvloop(test_files_and_bytes_in_order(tmp_path, monkeypatch, native=True))


def test_uvloop_slow_reader_gets_every_byte(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    contents = [os.urandom(4 << 20) for _ in range(3)]
    paths = _files(tmp_path, contents)
    opened: list[BlockFile] = []

    async def items() -> AsyncGenerator[tuple[send_blocks.Part, int, int], None]:
        for p, c in zip(paths, contents, strict=True):
            f = BlockFile(io.FileIO(p, "rb"), 0, len(c))
            opened.append(f)
            yield f, 0, len(c)


    real_writable, waits = send_blocks._writable, []

    async def counted(loop: asyncio.AbstractEventLoop, fd: int) -> None:
        waits.append(fd)
        await real_writable(loop, fd)
    monkeypatch.setattr(send_blocks, "_writable", counted)
    fds_before = len(os.listdir("/proc/self/fd"))

    async def main() -> None:
        before = _sendfile_count()
        got = await _serve(items, sum(map(len, contents)), _slow_fetch)
        assert got == b"".join(contents)
        assert _sendfile_count() - before == 12 << 20  # every byte by the kernel
    _on_uvloop(main())
    assert waits  # the socket filled up: it waited for room, then went on
    assert all(f.file.closed for f in opened)
    assert len(os.listdir("/proc/self/fd")) <= fds_before  # the duplicates are closed


def test_uvloop_client_gone_mid_body_closes_files(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    _on_uvloop(test_client_gone_mid_body_closes_files(tmp_path))
    assert len(os.listdir("/proc/self/fd")) <= fds_before
