"""Encrypted frames (pure): 4-byte length | SecretBox(msgpack message), with a counter
nonce per direction so a replayed or reordered frame fails to decrypt."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

MAX_FRAME = 64 * 1024 * 1024


class FrameError(Exception):
    pass


class Sealer:
    def __init__(self, key: bytes):
        self.box = SecretBox(key)
        self.counter = 0

    def seal(self, msg: Any) -> bytes:
        nonce = self.counter.to_bytes(24, "big")
        self.counter += 1
        ct = self.box.encrypt(msgpack.packb(msg, use_bin_type=True), nonce).ciphertext
        return struct.pack(">I", len(ct)) + ct


class Opener:
    def __init__(self, key: bytes):
        self.box = SecretBox(key)
        self.counter = 0

    def open(self, ct: bytes) -> Any:
        nonce = self.counter.to_bytes(24, "big")
        self.counter += 1
        try:
            plain = self.box.decrypt(ct, nonce)
        except CryptoError:
            raise FrameError("frame failed authentication") from None
        try:
            return msgpack.unpackb(plain, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as e:  # authentic, not msgpack
            raise FrameError(f"undecodable frame: {type(e).__name__}") from None


def request_parts(msg: Any) -> tuple[int, str, Any]:
    """A request frame is [id, path, body]: anything else is a protocol error."""
    if not isinstance(msg, list | tuple) or len(msg) != 3 or type(msg[0]) is not int \
            or not isinstance(msg[1], str):
        raise FrameError("malformed request frame: expected [id, path, body]")
    return msg[0], msg[1], msg[2]


def frame_len(header: bytes) -> int:
    (n,) = struct.unpack(">I", header)
    if n > MAX_FRAME:
        raise FrameError(f"frame too large ({n} bytes)")
    return n
