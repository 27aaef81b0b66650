"""Incremental, sans-IO decoder for `Content-Encoding: aws-chunked` request bodies.

Signed wire format (CRLF line ends):

    <hex-size>;chunk-signature=<sig>  <data>  ...  0;chunk-signature=<sig>
    [optional blank line] name:value ... x-amz-trailer-signature:<sig>  <blank line>

Unsigned bodies are the same without the `;chunk-signature=` extensions and without the
trailer signature; without trailers the body ends with `0` and a blank line.

The caller feeds whatever bytes the socket produced; we hand back payload pieces as soon as
they arrive, hashing them on the way, so memory stays bounded by what one feed() holds, however
large the chunks. A signed chunk's signature is checked when the chunk ends: the caller must
treat the payload as unverified until finish() returned, and commit nothing before (the S3
handlers make an object or part visible only once the body's end was read).
"""

from __future__ import annotations

import hashlib
import re

from .. import errors
from .sigv4 import EMPTY_SHA256, SigningContext, sign, signatures_equal

# Chunk data is streamed, never held: this only refuses absurd sizes (AWS SDKs send 8 KiB to
# 1 MiB chunks).
MAX_CHUNK_SIZE = 64 * 1024 * 1024
MAX_LINE = 4096  # a chunk header is ~90 bytes; anything this long is garbage
MAX_TRAILER_SECTION = 16 * 1024
TRAILER_SIGNATURE = "x-amz-trailer-signature"

_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIGNATURE = re.compile(rb"[0-9a-f]{64}")
_TRAILER_SIG_LINE = re.compile(rb"x-amz-trailer-signature:[0-9a-fA-F]{64}")

# Parser states.
_SIZE_LINE, _DATA, _DATA_CRLF, _TRAILERS, _DONE = range(5)


class AwsChunkedDecoder:
    def __init__(self, *, context: SigningContext | None, signed: bool,
                 expect_trailer: str | None) -> None:
        if signed and context is None:
            raise ValueError("a signed aws-chunked body needs a signing context")
        self._ctx = context
        self._signed = signed
        self._expect_trailer = expect_trailer.lower() if expect_trailer else None
        self._previous = context.seed_signature if context is not None else ""
        self._buf = bytearray()
        self._state = _SIZE_LINE
        self._remaining = 0  # bytes of the current chunk's data still to read
        self._chunk_sig = b""
        self._chunk_hash = hashlib.sha256()
        self._decoded = 0
        self._trailers: dict[str, str] = {}
        self._trailer_signature: str | None = None
        self._blank_after_last = False  # saw the empty line that may end a trailer-less body
        self._trailer_bytes = 0

    @property
    def decoded_length(self) -> int:
        return self._decoded

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> list[bytes]:
        """Consume raw body bytes; return the payload pieces that became available."""
        if not data:
            return []
        if self._state == _DONE:
            raise errors.InvalidRequest("Unexpected data after the end of the aws-chunked body")
        self._buf += data
        out: list[bytes] = []
        while self._step(out):
            pass
        return out

    def finish(self) -> dict[str, str]:
        """Signal end of input; returns the trailers (lowercase name -> value)."""
        if self._state == _TRAILERS:
            if self._buf:
                # Some clients omit the CRLF after the trailer signature; accept that only
                # when the line is visibly complete, so a truncated body is still caught.
                line = bytes(self._buf).rstrip(b"\r")
                if not (self._signed and _TRAILER_SIG_LINE.fullmatch(line)):
                    raise errors.IncompleteBody()
                self._trailer_line(line)
                self._buf.clear()
            if not self._trailers and self._trailer_signature is None \
                    and not self._blank_after_last:
                raise errors.IncompleteBody()
            self._end_of_trailers()
        if self._state != _DONE:
            raise errors.IncompleteBody()
        if self._expect_trailer and self._expect_trailer not in self._trailers:
            raise errors.InvalidRequest(
                f"The {self._expect_trailer} trailer announced in x-amz-trailer was not sent")
        return dict(self._trailers)

    # ------------------------------------------------------------------ state machine

    def _step(self, out: list[bytes]) -> bool:
        """Advance one state transition; False when more input is needed."""
        if self._state == _SIZE_LINE:
            line = self._take_line(b"\r\n")
            if line is None:
                return False
            self._chunk_header(line)
            return True
        if self._state == _DATA:
            if not self._buf:
                return False
            n = min(self._remaining, len(self._buf))
            if n == len(self._buf):
                piece = bytes(self._buf)
                self._buf.clear()
            else:
                piece = bytes(self._buf[:n])
                del self._buf[:n]
            self._remaining -= n
            if self._signed:
                self._chunk_hash.update(piece)
            self._decoded += n
            out.append(piece)
            if self._remaining == 0:
                self._state = _DATA_CRLF
            return True
        if self._state == _DATA_CRLF:
            if len(self._buf) < 2:
                if self._buf and self._buf[:1] != b"\r":
                    raise errors.InvalidRequest("Missing CRLF after aws-chunked chunk data")
                return False
            if self._buf[:2] != b"\r\n":
                raise errors.InvalidRequest("Missing CRLF after aws-chunked chunk data")
            del self._buf[:2]
            self._end_of_chunk()
            return True
        if self._state == _TRAILERS:
            line = self._take_line(b"\n")
            if line is None:
                return False
            if line.endswith(b"\r"):
                line = line[:-1]
            self._trailer_line(line)
            return True
        if self._buf:  # _DONE
            raise errors.InvalidRequest("Unexpected data after the end of the aws-chunked body")
        return False

    def _take_line(self, terminator: bytes) -> bytes | None:
        end = self._buf.find(terminator)
        if end < 0:
            if len(self._buf) > MAX_LINE:
                raise errors.InvalidRequest("aws-chunked line too long")
            return None
        if end > MAX_LINE:
            raise errors.InvalidRequest("aws-chunked line too long")
        line = bytes(self._buf[:end])
        del self._buf[:end + len(terminator)]
        return line

    def _chunk_header(self, line: bytes) -> None:
        size_field, *extensions = line.split(b";")
        size_field = size_field.strip(b" \t")
        if not _HEX_SIZE.fullmatch(size_field):
            raise errors.InvalidRequest(f"Invalid aws-chunked chunk size {size_field[:32]!r}")
        size = int(size_field, 16)
        if size > MAX_CHUNK_SIZE:
            raise errors.InvalidRequest(f"aws-chunked chunk too large ({size} bytes)")
        if self._signed:
            if len(extensions) != 1 or not extensions[0].startswith(b"chunk-signature="):
                raise errors.InvalidRequest("Missing chunk-signature in aws-chunked body")
            signature = extensions[0][len(b"chunk-signature="):].strip().lower()
            if not _SIGNATURE.fullmatch(signature):
                raise errors.InvalidRequest("Malformed chunk-signature in aws-chunked body")
            self._chunk_sig = signature
        # Unsigned bodies: extensions carry nothing we trust, so they are ignored.
        self._remaining = size
        self._chunk_hash = hashlib.sha256()
        if size == 0:
            self._end_of_chunk()
            self._state = _TRAILERS
        else:
            self._state = _DATA

    def _end_of_chunk(self) -> None:
        if self._signed:
            assert self._ctx is not None
            to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", self._ctx.amz_date, self._ctx.scope,
                                 self._previous, EMPTY_SHA256, self._chunk_hash.hexdigest()])
            expected = sign(self._ctx.signing_key, to_sign)
            if not signatures_equal(expected, self._chunk_sig.decode()):
                raise errors.SignatureDoesNotMatch(
                    "The chunk signature we calculated does not match the one you provided.")
            self._previous = expected
        self._state = _SIZE_LINE

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILER_SECTION:
            raise errors.InvalidRequest("aws-chunked trailer section too large")
        if not line:
            if self._trailers or self._trailer_signature is not None:
                if self._signed and self._trailer_signature is None:
                    return  # tolerate a blank line between trailers and their signature
                self._end_of_trailers()
            elif self._blank_after_last:
                raise errors.InvalidRequest("Unexpected data after the end of the aws-chunked "
                                            "body")
            else:
                # Either the end of a trailer-less body, or a separator before the trailers.
                self._blank_after_last = True
            return
        name, sep, value = line.partition(b":")
        try:
            key = name.decode("ascii").strip().lower()
            text = value.decode("ascii").strip()
        except UnicodeDecodeError:
            raise errors.InvalidRequest("Non-ASCII aws-chunked trailer") from None
        if not sep or not key or self._trailer_signature is not None:
            raise errors.InvalidRequest("Malformed aws-chunked trailer section")
        if key == TRAILER_SIGNATURE:
            self._trailer_signature = text
        elif key in self._trailers:
            raise errors.InvalidRequest(f"Duplicate aws-chunked trailer {key}")
        else:
            self._trailers[key] = text

    def _end_of_trailers(self) -> None:
        if self._signed and (self._trailers or self._trailer_signature is not None):
            assert self._ctx is not None
            if self._trailer_signature is None:
                raise errors.SignatureDoesNotMatch("Missing x-amz-trailer-signature")
            canonical = "".join(f"{k}:{v}\n" for k, v in sorted(self._trailers.items()))
            to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", self._ctx.amz_date, self._ctx.scope,
                                 self._previous,
                                 hashlib.sha256(canonical.encode()).hexdigest()])
            if not signatures_equal(sign(self._ctx.signing_key, to_sign),
                                    self._trailer_signature):
                raise errors.SignatureDoesNotMatch(
                    "The trailer signature we calculated does not match the one you provided.")
        self._state = _DONE
