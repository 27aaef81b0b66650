"""Boxed stream after the handshake (pure, sans-IO): records of
4-byte length | AEAD(plaintext, associated data = the length), one key per direction,
counter nonces.

A tampered, replayed, reordered or truncated record fails to authenticate (the nonce the
receiver expects is the next counter value; the length is authenticated too), and the
connection must then be dropped: a StreamError leaves the Opener unusable on purpose.

The AEAD is libsodium's AEGIS-128L, called directly through PyNaCl's cffi module. At 1 MiB
blocks every pass over the data counts as much as the cipher, so:
- a large plaintext (a block's frame) is sealed alone, straight from the caller's buffer into
  the output (no gathering copy); the small frames around it share a record;
- all records of one batch go into one fresh output buffer: one write, one system call;
- a large record is opened into a fresh `bytes` object of its own, so the receiver can hand
  it on without copying; small ones are opened in place in the receive buffer.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct

from nacl._sodium import ffi, lib  # PyNaCl's own binding to libsodium

# libsodium picks the AES-NI implementation of AEGIS in sodium_init(); without it the
# portable code runs, ~100x slower. PyNaCl calls it only when nacl.bindings is imported.
if lib.sodium_init() < 0:  # pragma: no cover - only on a broken libsodium
    raise ImportError("libsodium failed to initialise")

# AEGIS-128L rather than AEGIS-256: ~1.6x the speed on AES-NI (0.10 vs 0.16 ms per MiB
# here). Its claims are 128-bit security against key recovery and forgery as long as a
# (key, nonce) pair is never reused, with a 256-bit tag. Both hold: each direction of a
# session has its own key, derived from the handshake's ephemeral X25519 secret (forward
# secrecy is unchanged), and nonces are a per-key counter that never wraps in practice.
_encrypt = lib.crypto_aead_aegis128l_encrypt
_decrypt = lib.crypto_aead_aegis128l_decrypt
MAC_LEN = int(lib.crypto_aead_aegis128l_abytes())
_KEY_LEN = int(lib.crypto_aead_aegis128l_keybytes())
_NONCE_LEN = int(lib.crypto_aead_aegis128l_npubbytes())
SESSION_KEY_LEN = 32  # what the handshake hands over
# Bounds the memory one record can pin in the receiver before it is authenticated; holds
# a body frame of 1 MiB (conn.MAX_FRAME) with its MAC.
MAX_RECORD = (1 << 20) + 4096
# A plaintext part at least this big is sealed as a record of its own (no gathering copy),
# and a record at least this big is opened into a buffer of its own (no copy on delivery).
OWN_RECORD = 32 * 1024
_LEN = struct.Struct(">I")

# A `bytes` object with uninitialised contents (the documented C API, as C extensions use
# it): the AEAD fills it before anything else sees it. Zero-filling a fresh bytearray
# instead would cost one more pass over every MiB.
_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.restype = ctypes.py_object
_new_bytes.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)


class StreamError(Exception):
    pass


def _cipher_key(session_key: bytes) -> bytes:
    """The AEGIS-128L key of a 32-byte session key: a keyed BLAKE2b of it, 128 bits."""
    if len(session_key) != SESSION_KEY_LEN:
        raise ValueError("bad key length")
    return hashlib.blake2b(b"", key=session_key, person=b"pg-aegis128l",
                           digest_size=_KEY_LEN).digest()


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(_NONCE_LEN, "big")


def _fresh(n: int) -> bytes:
    """A new, unshared bytes object of n > 0 bytes, to be filled at once by the caller."""
    out: bytes = _new_bytes(None, n)
    return out


class Sealer:
    def __init__(self, key: bytes):
        self._key = _cipher_key(key)
        self._counter = 0

    def seal(self, plain: bytes | bytearray | memoryview) -> bytes:
        """One record per call; callers keep `plain` within MAX_RECORD - MAC_LEN."""
        if len(plain) + MAC_LEN > MAX_RECORD:
            raise ValueError("record too large")
        out = _fresh(4 + len(plain) + MAC_LEN)
        self._seal_into(ffi.from_buffer(out), 0, ffi.from_buffer(plain), len(plain))
        return out

    def _seal_into(self, dst: object, pos: int, src: object, n: int) -> int:
        """Writes the record of `n` bytes at `src` at dst + pos; -> the position after it."""
        head = dst + pos  # type: ignore[operator]
        ffi.memmove(head, _LEN.pack(n + MAC_LEN), 4)
        rc = _encrypt(head + 4, ffi.NULL, src, n, head, 4, ffi.NULL, _nonce(self._counter),
                      self._key)
        if rc != 0:  # pragma: no cover - libsodium cannot fail here
            raise StreamError("encryption failed")
        self._counter += 1
        return pos + 4 + n + MAC_LEN

    def seal_parts(self, parts: list[bytes | memoryview]) -> bytes:
        """The records of the concatenation of `parts`, in one buffer. Parts of OWN_RECORD
        bytes or more are sealed alone, straight from where they are; runs of smaller ones
        are gathered into a record (a small copy). Empty input: no record."""
        step = MAX_RECORD - MAC_LEN
        groups: list[bytes | memoryview] = []
        small: list[bytes | memoryview] = []
        small_n = 0
        for p in parts:
            n = len(p)
            if n < OWN_RECORD:
                if small_n + n > step:
                    groups.append(b"".join(small))
                    small, small_n = [], 0
                small.append(p)
                small_n += n
                continue
            if small:
                groups.append(b"".join(small))
                small, small_n = [], 0
            if n <= step:
                groups.append(p)
            else:
                view = memoryview(p)
                groups.extend(view[i:i + step] for i in range(0, n, step))
        if small:
            groups.append(b"".join(small))
        if not groups:
            return b""
        out = _fresh(sum(4 + len(g) + MAC_LEN for g in groups))
        dst = ffi.from_buffer(out)
        pos = 0
        for g in groups:
            pos = self._seal_into(dst, pos, ffi.from_buffer(g), len(g))
        return out

    def seal_all(self, plain: bytes | bytearray | memoryview) -> list[bytes]:
        step = MAX_RECORD - MAC_LEN
        if len(plain) <= step:
            return [self.seal(plain)]
        view = memoryview(plain)
        return [self.seal(view[i:i + step]) for i in range(0, len(plain), step)]


class Opener:
    def __init__(self, key: bytes):
        self._key = _cipher_key(key)
        self._counter = 0
        self._buf = bytearray()
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete record: non-zero at EOF means the stream was truncated."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | memoryview]:
        """Ciphertext in, plaintext records out (their own buffers); StreamError on
        anything not authentic."""
        self._buf += data
        with memoryview(self._buf) as view:
            out, used = self._records(view, in_place=False)
        del self._buf[:used]
        return out

    def open_in_place(self, view: memoryview) -> tuple[list[bytes | memoryview], int]:
        """The whole records at the start of `view`, a writable receive buffer the caller
        reuses: -> (plaintexts, bytes used); the rest is an incomplete record. Records of
        OWN_RECORD bytes or more are opened into `bytes` of their own (the receiver keeps
        them without copying); smaller ones in `view` itself, as views valid until the
        caller reuses those bytes."""
        return self._records(view, in_place=True)

    def _records(self, view: memoryview,
                 in_place: bool) -> tuple[list[bytes | memoryview], int]:
        if self._broken:
            raise StreamError("stream already failed")
        out: list[bytes | memoryview] = []
        pos = 0
        size = len(view)
        if size < 4:
            return out, 0
        with ffi.from_buffer(view, require_writable=in_place) as buf:
            while size - pos >= 4:
                (n,) = _LEN.unpack_from(view, pos)
                if n < MAC_LEN or n > MAX_RECORD:
                    self._broken = True
                    raise StreamError(f"bad record length {n}")
                if size - pos - 4 < n:
                    break
                ct = buf + pos + 4
                plain: bytes | memoryview
                if n == MAC_LEN:  # nothing to write (and b"" is shared: never written to)
                    dst, plain = ct, b""
                elif in_place and n < OWN_RECORD:
                    dst = ct
                    plain = view[pos + 4:pos + 4 + n - MAC_LEN]
                else:
                    plain = _fresh(n - MAC_LEN)
                    dst = ffi.from_buffer(plain)
                rc = _decrypt(dst, ffi.NULL, ffi.NULL, ct, n, buf + pos, 4,
                              _nonce(self._counter), self._key)
                if rc != 0:
                    self._broken = True
                    raise StreamError("record failed authentication")
                self._counter += 1
                out.append(plain)
                pos += 4 + n
        return out, pos
