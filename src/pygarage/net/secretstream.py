"""Boxed stream after the handshake (pure, sans-IO): records of
4-byte length | AEAD(plaintext, associated data = the length), one key per direction,
counter nonces.

A tampered, replayed, reordered or truncated record fails to authenticate (the nonce the
receiver expects is the next counter value; the length is authenticated too), and the
connection must then be dropped: a StreamError leaves the Opener unusable on purpose.

The AEAD is libsodium's AEGIS-256 (256-bit key and nonce): several times the speed of
XSalsa20-Poly1305 (SecretBox) on AES-NI machines. libsodium is called directly through
PyNaCl's cffi module so that a record is encrypted into its final buffer and decrypted
straight out of the receive buffer: at 1 MiB blocks, copies cost as much as the cipher.
"""

from __future__ import annotations

import struct

from nacl._sodium import ffi, lib  # PyNaCl's own binding to libsodium

# libsodium picks the AES-NI implementation of AEGIS in sodium_init(); without it the
# portable code runs, ~100x slower. PyNaCl calls it only when nacl.bindings is imported.
if lib.sodium_init() < 0:  # pragma: no cover - only on a broken libsodium
    raise ImportError("libsodium failed to initialise")
MAC_LEN = int(lib.crypto_aead_aegis256_abytes())
_NONCE_LEN = int(lib.crypto_aead_aegis256_npubbytes())
# Bounds the memory one record can pin in the receiver before it is authenticated.
MAX_RECORD = 1 << 20
_LEN = struct.Struct(">I")
_ZERO_MAC = bytes(MAC_LEN)


class StreamError(Exception):
    pass


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(_NONCE_LEN, "big")


class Sealer:
    def __init__(self, key: bytes):
        if len(key) != int(lib.crypto_aead_aegis256_keybytes()):
            raise ValueError("bad key length")
        self._key = key
        self._counter = 0

    def seal(self, plain: bytes | bytearray | memoryview) -> bytearray:
        """One record per call; callers keep `plain` within MAX_RECORD - MAC_LEN."""
        n = len(plain) + MAC_LEN
        if n > MAX_RECORD:
            raise ValueError("record too large")
        out = bytearray(4 + n)
        _LEN.pack_into(out, 0, n)
        dst = ffi.from_buffer(out)
        rc = lib.crypto_aead_aegis256_encrypt(
            dst + 4, ffi.NULL, ffi.from_buffer(plain), len(plain), dst, 4, ffi.NULL,
            _nonce(self._counter), self._key)
        if rc != 0:  # pragma: no cover - libsodium cannot fail here
            raise StreamError("encryption failed")
        self._counter += 1
        return out

    def seal_parts(self, parts: list[bytes | memoryview]) -> list[bytearray]:
        """Records of the concatenation of `parts`, encrypted in place in the one buffer
        the parts are gathered into (no intermediate join, no zeroed output buffer)."""
        size = sum(len(p) for p in parts)
        if size + MAC_LEN > MAX_RECORD:
            return self.seal_all(b"".join(parts))
        out = bytearray().join([_LEN.pack(size + MAC_LEN), *parts, _ZERO_MAC])
        buf = ffi.from_buffer(out)
        rc = lib.crypto_aead_aegis256_encrypt(
            buf + 4, ffi.NULL, buf + 4, size, buf, 4, ffi.NULL, _nonce(self._counter),
            self._key)
        if rc != 0:  # pragma: no cover - libsodium cannot fail here
            raise StreamError("encryption failed")
        self._counter += 1
        return [out]

    def seal_all(self, plain: bytes) -> list[bytearray]:
        step = MAX_RECORD - MAC_LEN
        if len(plain) <= step:
            return [self.seal(plain)]
        view = memoryview(plain)
        return [self.seal(view[i:i + step]) for i in range(0, len(plain), step)]


class Opener:
    def __init__(self, key: bytes):
        if len(key) != int(lib.crypto_aead_aegis256_keybytes()):
            raise ValueError("bad key length")
        self._key = key
        self._counter = 0
        self._buf = bytearray()
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete record: non-zero at EOF means the stream was truncated."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytearray]:
        """Ciphertext in, plaintext records out; StreamError on anything not authentic."""
        if self._buf:
            self._buf += data
            buf: bytes | bytearray = self._buf
        else:
            buf = data  # the common case: parse the received bytes in place
        with memoryview(buf) as view:
            out, used = self.take(view)
            rest = bytes(view[used:]) if buf is not self._buf else b""
        if buf is self._buf:
            del self._buf[:used]
        else:
            self._buf = bytearray(rest)
        return out

    def take(self, view: memoryview) -> tuple[list[bytearray], int]:
        """The whole records at the start of `view` (a caller-owned receive buffer):
        -> (plaintexts, bytes used). The rest is an incomplete record."""
        if self._broken:
            raise StreamError("stream already failed")
        out: list[bytearray] = []
        pos = 0
        while len(view) - pos >= 4:
            (n,) = _LEN.unpack_from(view, pos)
            if n < MAC_LEN or n > MAX_RECORD:
                self._broken = True
                raise StreamError(f"bad record length {n}")
            if len(view) - pos - 4 < n:
                break
            out.append(self._open(view[pos:pos + 4], view[pos + 4:pos + 4 + n]))
            pos += 4 + n
        return out, pos

    def open_in_place(self, view: memoryview) -> tuple[list[memoryview], int]:
        """take() decrypting in `view` itself (a writable receive buffer): the plaintexts
        are views into it, valid until the caller reuses those bytes. Saves allocating and
        filling a buffer per record on the bulk path."""
        if self._broken:
            raise StreamError("stream already failed")
        out: list[memoryview] = []
        pos = 0
        with ffi.from_buffer(view, require_writable=True) as buf:
            while len(view) - pos >= 4:
                (n,) = _LEN.unpack_from(view, pos)
                if n < MAC_LEN or n > MAX_RECORD:
                    self._broken = True
                    raise StreamError(f"bad record length {n}")
                if len(view) - pos - 4 < n:
                    break
                rc = lib.crypto_aead_aegis256_decrypt(
                    buf + pos + 4, ffi.NULL, ffi.NULL, buf + pos + 4, n, buf + pos, 4,
                    _nonce(self._counter), self._key)
                if rc != 0:
                    self._broken = True
                    raise StreamError("record failed authentication")
                self._counter += 1
                out.append(view[pos + 4:pos + 4 + n - MAC_LEN])
                pos += 4 + n
        return out, pos

    def _open(self, head: memoryview, ct: memoryview) -> bytearray:
        plain = bytearray(len(ct) - MAC_LEN)
        rc = lib.crypto_aead_aegis256_decrypt(
            ffi.from_buffer(plain), ffi.NULL, ffi.NULL, ffi.from_buffer(ct), len(ct),
            ffi.from_buffer(head), 4, _nonce(self._counter), self._key)
        if rc != 0:
            self._broken = True
            raise StreamError("record failed authentication")
        self._counter += 1
        return plain
