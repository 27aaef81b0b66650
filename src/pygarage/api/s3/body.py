"""Request bodies as a stream of payload bytes, whatever the transfer form: plain
(Content-Length or chunked), or aws-chunked (signed chunks, trailers).

Reads never buffer more than the caller asks for plus one network chunk. Length mismatches
and client disconnects become IncompleteBody; bad chunk signatures SignatureDoesNotMatch.

aws-chunked data is handed over before its chunk's signature is checked (so memory does not
grow with the chunk size): the body is only trustworthy once read() returned fewer bytes than
asked, which happens only after the end of the body verified. Handlers commit nothing before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from aiohttp import StreamReader

from ..common import errors
from ..common.signature.chunked import AwsChunkedDecoder
from ..common.signature.sigv4 import AuthResult
from ..common.wire import parse_uint


class Body:
    def __init__(self, stream: StreamReader, headers: Mapping[str, str],
                 auth: AuthResult | None):
        self.stream = stream
        self.trailers: dict[str, str] = {}
        # Received payload not yet read, as the pieces it came in: a read joins what it
        # takes (one copy) instead of appending to and slicing one buffer (three).
        self._pieces: deque[bytes | memoryview] = deque()
        self._buffered = 0
        self._eof = False
        self._raw_len = 0
        self.length = 0  # payload bytes delivered
        cl = headers.get("content-length")
        self.content_length = parse_uint(cl, "Content-Length") if cl is not None else None
        sha = auth.content_sha256 if auth else "UNSIGNED-PAYLOAD"
        self.expected_sha256 = sha if len(sha) == 64 and sha not in ("UNSIGNED-PAYLOAD",) \
            and not sha.startswith("STREAMING") else None
        self.decoder: AwsChunkedDecoder | None = None
        self.declared_length: int | None = self.content_length
        if sha.startswith("STREAMING-"):
            if sha == "STREAMING-UNSIGNED-PAYLOAD" or auth is None:
                raise errors.InvalidRequest(f"unsupported x-amz-content-sha256: {sha}")
            trailer = headers.get("x-amz-trailer")
            if sha.endswith("-TRAILER") and not trailer:
                raise errors.InvalidRequest("x-amz-trailer is required with " + sha)
            self.decoder = AwsChunkedDecoder(
                context=auth.context, signed=sha.startswith("STREAMING-AWS4-HMAC-SHA256"),
                expect_trailer=trailer.strip().lower() if trailer else None)
            dl = headers.get("x-amz-decoded-content-length")
            self.declared_length = parse_uint(dl, "x-amz-decoded-content-length") \
                if dl is not None else None

    async def _fill(self) -> None:
        """Pull one network read into the payload buffer (decoding aws-chunked)."""
        try:
            # One chunk as the connection received it (at most one socket read): no copy,
            # where read(n) joins and slices chunks to make n bytes.
            data, end_of_http_chunk = await self.stream.readchunk()
            # (b"", True) marks a chunked body's chunk boundary, not its end. aiohttp's
            # empty body (one shared object) answers it forever once read: at_eof() ends it.
            while not data and end_of_http_chunk and not self.stream.at_eof():
                data, end_of_http_chunk = await self.stream.readchunk()
        except Exception as e:  # disconnects, ContentLengthError, ...
            raise errors.IncompleteBody(f"error reading the request body: {e}") from None
        if not data:
            if self.content_length is not None and self._raw_len < self.content_length:
                raise errors.IncompleteBody()
            if self.decoder is not None:
                self.trailers = self.decoder.finish()
            self._eof = True
            return
        self._raw_len += len(data)
        pieces = self.decoder.feed(data) if self.decoder is not None else (data,)
        for piece in pieces:
            if piece:
                self._pieces.append(piece)
                self._buffered += len(piece)

    def _take(self, n: int) -> bytes:
        """The first n buffered bytes (or all there are)."""
        pieces = self._pieces
        out: list[bytes | memoryview] = []
        need = n
        while need and pieces:
            p = pieces[0]
            if len(p) <= need:
                out.append(pieces.popleft())
                need -= len(p)
            else:
                mv = memoryview(p)
                out.append(mv[:need])
                pieces[0] = mv[need:]
                need = 0
        self._buffered -= n - need
        if len(out) == 1 and isinstance(out[0], bytes):
            return out[0]  # a whole piece, as received: no copy
        return b"".join(out)

    async def read(self, n: int) -> bytes:
        """Up to n payload bytes; fewer only at the end; b'' once finished."""
        while self._buffered < n and not self._eof:
            await self._fill()
        out = self._take(n)
        self.length += len(out)
        if self._eof and not self._buffered and self.declared_length is not None \
                and self.length != self.declared_length:
            raise errors.IncompleteBody(
                f"body is {self.length} bytes but {self.declared_length} were declared")
        return out

    async def at_eof(self) -> bool:
        if not self._buffered and not self._eof:
            await self._fill()
        return self._eof and not self._buffered

    async def read_all(self, limit: int) -> bytes:
        data = await self.read(limit + 1)
        if len(data) > limit:
            raise errors.EntityTooLarge(f"request body larger than {limit} bytes")
        return data
