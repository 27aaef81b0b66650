"""api/s3/body.Body over aiohttp's real StreamReader: reads of any size return exactly the
bytes sent, across pieces and chunked-encoding boundaries; an empty body ends at once, for
every request (aiohttp shares one empty stream object between requests)."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from aiohttp import StreamReader
from aiohttp.streams import EMPTY_PAYLOAD

from pygarage.api.s3.body import Body


class _Protocol:
    """What StreamReader calls on its connection for flow control."""

    _reading_paused = False

    def pause_reading(self, **_kw: object) -> None:
        pass

    def resume_reading(self, **_kw: object) -> None:
        pass


def _stream(pieces: list[bytes], chunked: bool) -> StreamReader:
    s = StreamReader(_Protocol(), 1 << 20, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    for p in pieces:
        if chunked:
            s.begin_http_chunk_receiving()
        s.feed_data(p)
        if chunked:
            s.end_http_chunk_receiving()
    s.feed_eof()
    return s


def test_empty_body_ends_at_once_for_every_request() -> None:
    """aiohttp's empty stream is one object for all requests; once any request has read its
    end, it answers (b"", True) (a chunk boundary) forever. A Body must still end. Run in a
    thread: a regression would spin without ever yielding, and must fail, not hang."""
    results: list[bytes] = []

    async def requests() -> None:
        await EMPTY_PAYLOAD.readchunk()  # as earlier requests of the process did
        for _ in range(3):
            body = Body(EMPTY_PAYLOAD, {"content-length": "0"}, None)
            results.append(await body.read(1 << 20))
            assert await body.at_eof()

    t = threading.Thread(target=lambda: asyncio.run(requests()), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "reading an empty body never ended"
    assert results == [b"", b"", b""]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize(("n", "sizes"), [
    (1, (1, 3, 0, 2, 0, 5)), (3, (1, 3, 0, 2, 0, 5)),
    (4096, (1, 65536, 0, 262144, 5, 300_001, 0, 17)),
    (300_000, (1, 65536, 0, 262144, 5, 300_001, 0, 17)),
    (1 << 20, (1, 65536, 0, 262144, 5, 300_001, 0, 17))])
async def test_reads_of_any_size_return_exactly_what_was_sent(
        chunked: bool, n: int, sizes: tuple[int, ...]) -> None:
    pieces = [os.urandom(k) for k in sizes]
    pieces = [p for p in pieces if p or chunked]  # chunked: empty chunks are boundaries
    sent = b"".join(pieces)
    body = Body(_stream(pieces, chunked), {} if chunked else {"content-length": str(len(sent))},
                None)
    got = []
    while True:
        part = await asyncio.wait_for(body.read(n), 2)
        assert type(part) is bytes
        if not part:
            break
        assert len(part) == n or len(b"".join(got)) + len(part) == len(sent)
        got.append(part)
    assert b"".join(got) == sent and body.length == len(sent)


async def test_short_body_is_incomplete() -> None:
    from pygarage.api.common import errors
    body = Body(_stream([b"abc"], False), {"content-length": "10"}, None)
    with pytest.raises(errors.IncompleteBody):
        await body.read(100)
