"""Stored formats: msgpack with a version marker in front, so old formats can be migrated."""

from __future__ import annotations

from typing import Any

import msgpack


class CodecError(Exception):
    pass


def pack(marker: bytes, obj: Any) -> bytes:
    return marker + msgpack.packb(obj, use_bin_type=True)


def unpack(marker: bytes, data: bytes) -> Any:
    if not data.startswith(marker):
        raise CodecError(f"unknown stored format (expected marker {marker!r})")
    return msgpack.unpackb(data[len(marker):], raw=False, strict_map_key=False)


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
