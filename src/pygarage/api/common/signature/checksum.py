"""S3 flexible checksums (x-amz-checksum-*) and Content-MD5 handling.

Values travel as base64 of the big-endian digest, exactly as in the x-amz-checksum-<algo>
headers and trailers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from awscrt import checksums as crt

from .. import errors

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
DIGEST_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
HEADER_PREFIX = "x-amz-checksum-"
# x-amz-checksum-* headers that name a mode or algorithm rather than carry a value.
_NOT_VALUES = frozenset({"x-amz-checksum-algorithm", "x-amz-checksum-type",
                         "x-amz-checksum-mode"})


@dataclass
class Checksums:
    md5: bytes | None = None  # raw digest, for the ETag and Content-MD5
    sha256_hex: str | None = None  # for comparing with x-amz-content-sha256
    extra: dict[str, str] = field(default_factory=dict)  # algo -> base64 value


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc:
    """A running CRC with the hashlib-like surface the Checksummer needs."""

    def __init__(self, algo: str) -> None:
        self._fn = {"crc32": zlib.crc32, "crc32c": crt.crc32c, "crc64nvme": crt.crc64nvme}[algo]
        self._size = DIGEST_SIZES[algo]
        self._value = 0

    def update(self, data: bytes | memoryview) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")


# hashlib's HASHLIB_GIL_MINSIZE: updates this long or longer release the GIL.
_GIL_MINSIZE = 2048
SMALL_UPDATE = 64 * 1024  # above this, hashing is worth giving the GIL away (threads)


class Checksummer:
    """Computes every digest a PUT may need in one pass over the body.

    update() may run in a worker thread (asyncio.to_thread); the lock keeps concurrent or
    racing calls from interleaving, so blocks are always hashed whole and in call order.
    """

    def __init__(self, algorithms: Iterable[str], md5: bool = True,
                 sha256_hex: bool = False) -> None:
        algos = []
        for algo in algorithms:
            algo = algo.lower()
            if algo not in DIGEST_SIZES:
                raise ValueError(f"unsupported checksum algorithm {algo!r}")
            if algo not in algos:
                algos.append(algo)
        self._lock = threading.Lock()
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._want_sha256_hex = sha256_hex
        # One sha256 serves both x-amz-checksum-sha256 and x-amz-content-sha256.
        self._sha256 = hashlib.sha256() if sha256_hex or "sha256" in algos else None
        self._others: dict[str, _Hasher] = {}
        for algo in algos:
            if algo == "sha1":
                self._others[algo] = hashlib.sha1(usedforsecurity=False)
            elif algo != "sha256":
                self._others[algo] = _Crc(algo)
        self._algos = algos

    def update(self, data: bytes) -> None:
        with self._lock:
            if len(data) <= SMALL_UPDATE and len(data) >= _GIL_MINSIZE and \
                    threading.current_thread() is threading.main_thread():
                # On the event loop, a small body: hashlib releases the GIL for updates
                # of 2 KiB and more, and a busy thread (the db writer) may then keep the
                # loop waiting for up to the switch interval (5 ms) for every digest.
                # Pieces under that size are hashed holding the GIL: ~10 us for 4 KiB.
                mv = memoryview(data)
                for i in range(0, len(mv), _GIL_MINSIZE - 1):
                    self._update(mv[i:i + _GIL_MINSIZE - 1])
            else:
                self._update(data)

    def _update(self, data: bytes | memoryview) -> None:
        if self._md5 is not None:
            self._md5.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        for hasher in self._others.values():
            hasher.update(data)

    def result(self) -> Checksums:
        with self._lock:
            extra = {}
            for algo in self._algos:
                hasher = self._sha256 if algo == "sha256" else self._others.get(algo)
                assert hasher is not None
                extra[algo] = base64.b64encode(hasher.digest()).decode()
            return Checksums(
                md5=self._md5.digest() if self._md5 is not None else None,
                sha256_hex=(self._sha256.hexdigest()
                            if self._want_sha256_hex and self._sha256 is not None else None),
                extra=extra)


def _b64_digest(value: str, size: int) -> bytes | None:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def validate_checksum_value(algo: str, value: str) -> str:
    """Check a base64 checksum value has the right shape for its algorithm."""
    if algo not in DIGEST_SIZES:
        raise errors.InvalidRequest(f"Unsupported checksum algorithm: {algo}")
    if _b64_digest(value, DIGEST_SIZES[algo]) is None:
        raise errors.InvalidRequest(f"Value for {HEADER_PREFIX}{algo} header is invalid.")
    return value.strip()


def parse_checksum_headers(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The single (algo, base64 value) given in x-amz-checksum-<algo>, if any."""
    found: list[tuple[str, str]] = []
    for name, value in headers.items():
        name = name.lower()
        if name.startswith(HEADER_PREFIX) and name not in _NOT_VALUES:
            algo = name[len(HEADER_PREFIX):]
            found.append((algo, validate_checksum_value(algo, value)))
    if len(found) > 1:
        raise errors.InvalidRequest("Expecting a single x-amz-checksum- header. "
                                    "Multiple checksum Types are not allowed.")
    return found[0] if found else None


def _get(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def requested_algorithm(headers: Mapping[str, str]) -> str | None:
    """The checksum algorithm a client announced, by SDK header or by its trailer name."""
    for name in ("x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"):
        value = _get(headers, name)
        if value is not None:
            algo = value.strip().lower()
            if algo not in DIGEST_SIZES:
                raise errors.InvalidRequest(f"Unsupported checksum algorithm: {value.strip()}")
            return algo
    trailer = _get(headers, "x-amz-trailer")
    if trailer is not None:
        name = trailer.strip().lower()
        if name.startswith(HEADER_PREFIX):
            algo = name[len(HEADER_PREFIX):]
            if algo not in DIGEST_SIZES:
                raise errors.InvalidRequest(f"Unsupported checksum algorithm: {algo}")
            return algo
    return None


def verify(expected_b64: str, algo: str, computed: Checksums) -> None:
    """Raise BadDigest unless the client's checksum matches what we computed."""
    if algo not in computed.extra:
        raise ValueError(f"checksum {algo!r} was not computed")
    expected = _b64_digest(expected_b64, DIGEST_SIZES[algo])
    if expected is None:
        raise errors.InvalidRequest(f"Value for {HEADER_PREFIX}{algo} header is invalid.")
    if expected != base64.b64decode(computed.extra[algo]):
        raise errors.BadDigest(
            f"The {algo.upper()} you specified did not match the calculated checksum.")


def parse_content_md5(header_value: str) -> bytes:
    """The 16-byte digest from a Content-MD5 header; InvalidDigest if malformed."""
    digest = _b64_digest(header_value, 16)
    if digest is None:
        raise errors.InvalidDigest()
    return digest


def content_md5_matches(header_value: str, md5_digest: bytes) -> bool:
    return parse_content_md5(header_value) == md5_digest


# ---------------------------------------------------------------- CRC combination
# A FULL_OBJECT checksum of a multipart upload is the CRC of the whole object, computed from
# the parts' CRCs and sizes: crc(A + B) = crc(A) * x^(8 * len(B)) mod P  xor  crc(B), which
# holds for these CRCs because their initial value equals their final xor (all ones).

COMBINABLE = ("crc32", "crc32c", "crc64nvme")
# Reflected polynomials.
_POLY = {"crc32": 0xEDB88320, "crc32c": 0x82F63B78, "crc64nvme": 0x9A6C9329AC4BC9B5}
_X2N: dict[str, list[int]] = {}  # algo -> x^(2^k) mod P for k = 0..63


def _multmodp(a: int, b: int, poly: int, top: int) -> int:
    """a * b mod P, both reflected (x^0 is the top bit)."""
    m, p = top, 0
    while m:
        if a & m:
            p ^= b
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return p


def _x2n_table(algo: str) -> list[int]:
    table = _X2N.get(algo)
    if table is None:
        poly, top = _POLY[algo], 1 << (DIGEST_SIZES[algo] * 8 - 1)
        table = [top >> 1]  # x^1
        for _ in range(63):
            table.append(_multmodp(table[-1], table[-1], poly, top))
        _X2N[algo] = table
    return table


def crc_combine(algo: str, crc_a: int, crc_b: int, len_b: int) -> int:
    """The CRC of A + B from crc(A), crc(B) and len(B) in bytes."""
    if algo not in _POLY:
        raise ValueError(f"{algo!r} checksums cannot be combined")
    if len_b < 0 or len_b >= 1 << 60:
        raise ValueError("length out of range")
    poly, top = _POLY[algo], 1 << (DIGEST_SIZES[algo] * 8 - 1)
    table = _x2n_table(algo)
    # x^(8 * len_b) = product of x^(2^k) over the bits k of len_b, shifted by 3.
    p, n, k = top, len_b, 3
    while n:
        if n & 1:
            p = _multmodp(table[k], p, poly, top)
        n >>= 1
        k += 1
    return _multmodp(p, crc_a, poly, top) ^ crc_b


def combine_b64(algo: str, parts: Iterable[tuple[str, int]]) -> str:
    """FULL_OBJECT checksum (base64) from (part checksum base64, part size) in order."""
    size = DIGEST_SIZES[algo]
    crc = 0  # the CRC of nothing
    for value, length in parts:
        raw = _b64_digest(value, size)
        if raw is None:
            raise ValueError("invalid part checksum")
        crc = crc_combine(algo, crc, int.from_bytes(raw, "big"), length)
    return base64.b64encode(crc.to_bytes(size, "big")).decode()
