"""Boxed stream after the handshake (pure, sans-IO): records of
4-byte length | XSalsa20-Poly1305(plaintext), one key per direction, counter nonces.

A tampered, replayed, reordered or truncated record fails to authenticate (the nonce the
receiver expects is the next counter value), and the connection must then be dropped: a
StreamError leaves the Opener unusable on purpose.
"""

from __future__ import annotations

import struct

from nacl import bindings as sodium
from nacl.exceptions import CryptoError

MAC_LEN = sodium.crypto_secretbox_MACBYTES
# Bounds the memory one record can pin in the receiver before it is authenticated.
MAX_RECORD = 1 << 20
_LEN = struct.Struct(">I")


class StreamError(Exception):
    pass


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(24, "big")


class Sealer:
    def __init__(self, key: bytes):
        self._key = key
        self._counter = 0

    def seal(self, plain: bytes) -> bytes:
        """One record per call; callers keep `plain` within MAX_RECORD - MAC_LEN."""
        if len(plain) + MAC_LEN > MAX_RECORD:
            raise ValueError("record too large")
        ct = sodium.crypto_secretbox(plain, _nonce(self._counter), self._key)
        self._counter += 1
        return _LEN.pack(len(ct)) + ct

    def seal_all(self, plain: bytes) -> list[bytes]:
        step = MAX_RECORD - MAC_LEN
        if len(plain) <= step:
            return [self.seal(plain)]
        view = memoryview(plain)
        return [self.seal(bytes(view[i:i + step])) for i in range(0, len(plain), step)]


class Opener:
    def __init__(self, key: bytes):
        self._key = key
        self._counter = 0
        self._buf = bytearray()
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete record: non-zero at EOF means the stream was truncated."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Ciphertext in, plaintext records out; StreamError on anything not authentic."""
        if self._broken:
            raise StreamError("stream already failed")
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n < MAC_LEN or n > MAX_RECORD:
                self._broken = True
                raise StreamError(f"bad record length {n}")
            if len(buf) - pos - 4 < n:
                break
            ct = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            try:
                out.append(sodium.crypto_secretbox_open(ct, _nonce(self._counter), self._key))
            except CryptoError:
                self._broken = True
                raise StreamError("record failed authentication") from None
            self._counter += 1
        if pos:
            del buf[:pos]
        return out
