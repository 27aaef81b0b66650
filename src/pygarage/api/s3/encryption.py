"""SSE-C: objects encrypted at rest with a key the client sends on every request.

Nothing here does I/O. The customer key is never stored: an object keeps only a random salt
and HMAC-SHA256(key, salt), checked in constant time on later requests (as AWS keeps a
salted HMAC). Data is encrypted with a per-object key derived from the customer key and the
salt, block by block (AES-256-GCM, random 96-bit nonce per block): a ranged read decrypts
only the blocks it needs, and each block is authenticated. Encrypted blocks are stored
uncompressed (compressing ciphertext is useless, compressing before would leak through the
sizes) and addressed by the hash of their ciphertext, so equal plaintexts never
deduplicate and a block hash says nothing about the data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...block.block import DataBlock, pack_block
from ...model.s3.object_table import ObjectVersion
from ..common import errors

ALGORITHM = "AES256"
H_ALGO = "x-amz-server-side-encryption-customer-algorithm"
H_KEY = "x-amz-server-side-encryption-customer-key"
H_MD5 = "x-amz-server-side-encryption-customer-key-md5"
COPY_PREFIX = "x-amz-copy-source-"
# Kept in the object's header list. Clients cannot set it (only standard headers and
# x-amz-meta-* are stored from requests) and meta.response_headers never sends it back.
STORED = "x-pygarage-sse-c"
INTERNAL_PREFIX = "x-pygarage-"

NONCE = 12
TAG = 16
SALT = 16
_CHECK_LABEL = b"pygarage sse-c check"
_DATA_LABEL = b"pygarage sse-c data"


@dataclass(frozen=True)
class CustomerKey:
    key: bytes  # 32 bytes, from the request: never stored nor logged
    md5_b64: str

    def __repr__(self) -> str:  # keep the key out of tracebacks and logs
        return f"CustomerKey(md5={self.md5_b64})"


def parse_key(headers: Mapping[str, str], copy_source: bool = False) -> CustomerKey | None:
    """The SSE-C headers of a request (or its x-amz-copy-source-* ones), checked; None if
    absent. headers: lower-case names."""
    names = (H_ALGO, H_KEY, H_MD5)
    if copy_source:  # x-amz-copy-source-server-side-encryption-customer-*
        names = tuple(COPY_PREFIX + h[len("x-amz-"):] for h in names)  # type: ignore[assignment]
    algo, key_b64, md5_b64 = (headers.get(h) for h in names)
    if algo is None:
        if key_b64 is not None or md5_b64 is not None:
            raise errors.InvalidArgument(
                "Requests specifying Server Side Encryption with Customer provided keys must "
                "provide a valid encryption algorithm.")
        return None
    if algo != ALGORITHM:
        raise errors.InvalidEncryptionAlgorithm(
            "The Encryption request you specified is not valid. Supported value: AES256.")
    if key_b64 is None:
        raise errors.InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide an appropriate secret key.")
    key = _b64(key_b64)
    if key is None or len(key) != 32:
        raise errors.InvalidArgument("The secret key was invalid for the specified algorithm.")
    if md5_b64 is None:
        raise errors.InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide the client calculated MD5 of the secret key.")
    digest = hashlib.md5(key, usedforsecurity=False).digest()
    given = _b64(md5_b64)
    if given is None or not hmac.compare_digest(given, digest):
        raise errors.InvalidArgument(
            "The calculated MD5 hash of the key did not match the hash that was provided.")
    return CustomerKey(key, base64.b64encode(digest).decode())


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


@dataclass(frozen=True)
class Sealed:
    """One object's encryption: the customer key and the object's salt."""
    customer: CustomerKey
    salt: bytes

    @staticmethod
    def new(customer: CustomerKey) -> Sealed:
        return Sealed(customer, os.urandom(SALT))

    def _check(self) -> bytes:
        return hmac.new(self.customer.key, _CHECK_LABEL + self.salt, hashlib.sha256).digest()

    def _aead(self) -> AESGCM:
        data_key = hmac.new(self.customer.key, _DATA_LABEL + self.salt, hashlib.sha256).digest()
        return AESGCM(data_key)

    def stored_header(self) -> tuple[str, str]:
        return STORED, f"{ALGORITHM}:{self.salt.hex()}:{self._check().hex()}"

    def encrypt(self, data: bytes) -> bytes:
        """-> nonce || ciphertext || tag."""
        nonce = os.urandom(NONCE)
        return nonce + self._aead().encrypt(nonce, data, None)

    def decrypt(self, blob: bytes) -> bytes:
        if len(blob) < NONCE + TAG:
            raise errors.InternalError("encrypted block too short")
        try:
            return self._aead().decrypt(blob[:NONCE], blob[NONCE:], None)
        except InvalidTag:
            # The key was checked against the object's HMAC: the data itself is damaged.
            raise errors.InternalError("encrypted block failed authentication") from None

    def pack(self, data: bytes) -> tuple[bytes, DataBlock]:
        """Block packer for write_blocks: encrypt, then store as is (no compression),
        addressed by the ciphertext's hash."""
        return pack_block(self.encrypt(data), None)


def stored_params(headers: list[tuple[str, str]]) -> tuple[bytes, bytes] | None:
    """(salt, check) if these stored headers describe an SSE-C object."""
    for name, value in headers:
        if name == STORED:
            _algo, salt, check = value.split(":")
            return bytes.fromhex(salt), bytes.fromhex(check)
    return None


def strip_stored(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [h for h in headers if not h[0].startswith(INTERNAL_PREFIX)]


def is_encrypted(v: ObjectVersion) -> bool:
    headers = v.meta.headers if v.meta is not None else v.upload_headers
    return stored_params(headers) is not None


def open_stored(headers: list[tuple[str, str]], customer: CustomerKey | None, *,
                wrong_key: Callable[[], errors.S3Error]) -> Sealed | None:
    """Check the request's key against an object's (or upload's) stored headers.
    -> the Sealed to decrypt with, or None for a plaintext object."""
    params = stored_params(headers)
    if params is None:
        if customer is not None:
            raise errors.InvalidRequest("The encryption parameters are not applicable to "
                                        "this object.")
        return None
    if customer is None:
        raise errors.InvalidRequest(
            "The object was stored using a form of Server Side Encryption. The correct "
            "parameters must be provided to retrieve the object.")
    salt, check = params
    sealed = Sealed(customer, salt)
    if not hmac.compare_digest(sealed._check(), check):
        raise wrong_key()
    return sealed


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def for_write(headers: Mapping[str, str]) -> Sealed | None:
    """A new object's encryption, from the request's SSE-C headers (None: plaintext)."""
    customer = parse_key(_lower(headers))
    return Sealed.new(customer) if customer is not None else None


def for_read(headers: Mapping[str, str], v: ObjectVersion, *,
             copy_source: bool = False) -> Sealed | None:
    """GET/HEAD/GetObjectAttributes (or a copy's source): the key must match; a wrong key
    is 403 AccessDenied, as on AWS."""
    assert v.meta is not None
    customer = parse_key(_lower(headers), copy_source)
    return open_stored(v.meta.headers, customer, wrong_key=lambda: errors.AccessDenied(
        "The provided customer key does not match the one the object was encrypted with."))


def for_part(headers: Mapping[str, str], upload_headers: list[tuple[str, str]]
             ) -> Sealed | None:
    """UploadPart/UploadPartCopy: the key given on CreateMultipartUpload, again."""
    customer = parse_key(_lower(headers))
    if customer is None and stored_params(upload_headers) is not None:
        raise errors.InvalidRequest(
            "The multipart upload initiate requested encryption. Subsequent part requests "
            "must include the appropriate encryption parameters.")
    return open_stored(upload_headers, customer, wrong_key=lambda: errors.InvalidRequest(
        "The provided encryption parameters did not match the ones used originally."))


def response_headers(sealed: Sealed | None) -> dict[str, str]:
    if sealed is None:
        return {}
    return {H_ALGO: ALGORITHM, "x-amz-server-side-encryption-customer-key-MD5":
            sealed.customer.md5_b64}


def etag(sealed: Sealed | None, md5: bytes) -> str:
    """As on AWS, an SSE-C object's ETag is not the MD5 of its data (which would leak a
    hash of the plaintext): random, like Garage's."""
    return os.urandom(16).hex() if sealed is not None else md5.hex()
