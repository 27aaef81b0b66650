"""Request bodies as a stream of payload bytes, whatever the transfer form: plain
(Content-Length or chunked), or aws-chunked (signed chunks, trailers).

Reads never buffer more than the caller asks for plus one network chunk. Length mismatches
and client disconnects become IncompleteBody; bad chunk signatures SignatureDoesNotMatch.

aws-chunked data is handed over before its chunk's signature is checked (so memory does not
grow with the chunk size): the body is only trustworthy once read() returned fewer bytes than
asked, which happens only after the end of the body verified. Handlers commit nothing before.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import StreamReader

from ..common import errors
from ..common.signature.chunked import AwsChunkedDecoder
from ..common.signature.sigv4 import AuthResult
from ..common.wire import parse_uint

_READ = 256 * 1024


class Body:
    def __init__(self, stream: StreamReader, headers: Mapping[str, str],
                 auth: AuthResult | None):
        self.stream = stream
        self.trailers: dict[str, str] = {}
        self._buf = bytearray()
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
            data = await self.stream.read(_READ)
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
        if self.decoder is not None:
            for piece in self.decoder.feed(data):
                self._buf += piece
        else:
            self._buf += data

    async def read(self, n: int) -> bytes:
        """Up to n payload bytes; fewer only at the end; b'' once finished."""
        while len(self._buf) < n and not self._eof:
            await self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.length += len(out)
        if self._eof and not self._buf and self.declared_length is not None \
                and self.length != self.declared_length:
            raise errors.IncompleteBody(
                f"body is {self.length} bytes but {self.declared_length} were declared")
        return out

    async def at_eof(self) -> bool:
        if not self._buf and not self._eof:
            await self._fill()
        return self._eof and not self._buf

    async def read_all(self, limit: int) -> bytes:
        data = await self.read(limit + 1)
        if len(data) > limit:
            raise errors.EntityTooLarge(f"request body larger than {limit} bytes")
        return data
