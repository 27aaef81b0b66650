"""SSE-C, pure parts: header parsing, key check, block framing."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from pygarage.api.common import errors
from pygarage.api.s3 import encryption as enc
from pygarage.block.block import unpack_block
from pygarage.model.s3.object_table import COMPLETE, ObjectMeta, ObjectVersion

KEY = bytes(range(32))


def headers(key: bytes = KEY, prefix: str = "") -> dict[str, str]:
    p = f"x-amz-{prefix}server-side-encryption-customer-"
    return {p + "algorithm": "AES256", p + "key": base64.b64encode(key).decode(),
            p + "key-md5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def version(stored: list[tuple[str, str]]) -> ObjectVersion:
    return ObjectVersion(b"u" * 32, 1, COMPLETE, kind="block",
                         meta=ObjectMeta(1, "e", stored))


def test_parse_key() -> None:
    ck = enc.parse_key(headers())
    assert ck is not None and ck.key == KEY
    assert ck.md5_b64 == base64.b64encode(hashlib.md5(KEY).digest()).decode()
    assert enc.parse_key({}) is None
    assert enc.parse_key(headers(prefix="copy-source-")) is None
    assert enc.parse_key(headers(prefix="copy-source-"), copy_source=True) is not None
    assert KEY.hex() not in repr(ck) and str(list(KEY)) not in repr(ck)


@pytest.mark.parametrize(("change", "code"), [
    ({"x-amz-server-side-encryption-customer-algorithm": "aes256"},
     "InvalidEncryptionAlgorithmError"),
    ({"x-amz-server-side-encryption-customer-key": "AAAA"}, "InvalidArgument"),
    ({"x-amz-server-side-encryption-customer-key": "é"}, "InvalidArgument"),
    ({"x-amz-server-side-encryption-customer-key-md5": "AAAA"}, "InvalidArgument"),
    ({"x-amz-server-side-encryption-customer-key-md5": "\udcff"}, "InvalidArgument"),
])
def test_parse_key_errors(change: dict[str, str], code: str) -> None:
    with pytest.raises(errors.S3Error) as e:
        enc.parse_key({**headers(), **change})
    assert e.value.code == code and e.value.status == 400


def test_frame_round_trip_and_tamper() -> None:
    s = enc.Sealed.new(enc.CustomerKey(KEY, ""))
    for data in (b"", b"x", os.urandom(100_000)):
        blob = s.encrypt(data)
        assert len(blob) == len(data) + enc.NONCE + enc.TAG
        assert s.decrypt(blob) == data
    blob = bytearray(s.encrypt(b"hello world"))
    blob[20] ^= 1
    with pytest.raises(errors.S3Error):
        s.decrypt(bytes(blob))
    with pytest.raises(errors.S3Error):
        s.decrypt(b"short")
    # Same data, same key: different ciphertext (random nonces), so no dedup leak.
    assert s.encrypt(b"same") != s.encrypt(b"same")
    # Another object's salt derives another data key.
    other = enc.Sealed.new(enc.CustomerKey(KEY, ""))
    with pytest.raises(errors.S3Error):
        other.decrypt(s.encrypt(b"data"))


def test_pack_is_uncompressed_and_hashed_on_ciphertext() -> None:
    s = enc.Sealed.new(enc.CustomerKey(KEY, ""))
    data = b"a" * 100_000
    h, block = s.pack(data)
    assert not block.compressed
    assert unpack_block(h, block) == block.payload  # the hash is the ciphertext's
    assert s.decrypt(block.payload) == data


def test_stored_check_never_holds_the_key() -> None:
    s = enc.Sealed.new(enc.CustomerKey(KEY, ""))
    name, value = s.stored_header()
    assert name == enc.STORED
    assert KEY.hex() not in value and base64.b64encode(KEY).decode() not in value
    assert hashlib.md5(KEY).hexdigest() not in value
    v = version([("content-type", "a/b"), (name, value)])
    opened = enc.for_read(headers(), v)
    assert opened is not None and opened.salt == s.salt
    assert opened.decrypt(s.encrypt(b"x")) == b"x"
    with pytest.raises(errors.S3Error) as e:
        enc.for_read(headers(os.urandom(32)), v)
    assert (e.value.status, e.value.code) == (403, "AccessDenied")
    with pytest.raises(errors.S3Error) as e:
        enc.for_read({}, v)
    assert (e.value.status, e.value.code) == (400, "InvalidRequest")
    with pytest.raises(errors.S3Error) as e:
        enc.for_read(headers(), version([("content-type", "a/b")]))
    assert (e.value.status, e.value.code) == (400, "InvalidRequest")
    assert enc.for_read({}, version([])) is None
    assert enc.strip_stored([("a", "b"), (name, value)]) == [("a", "b")]


def test_part_key_must_match_upload() -> None:
    s = enc.Sealed.new(enc.CustomerKey(KEY, ""))
    stored = [s.stored_header()]
    assert enc.for_part(headers(), stored) is not None
    for h in ({}, headers(os.urandom(32))):
        with pytest.raises(errors.S3Error) as e:
            enc.for_part(h, stored)
        assert e.value.code == "InvalidRequest"
    with pytest.raises(errors.S3Error):
        enc.for_part(headers(), [])
    assert enc.for_part({}, []) is None


def test_etag_is_not_md5_when_encrypted() -> None:
    md5 = hashlib.md5(b"x").digest()
    assert enc.etag(None, md5) == md5.hex()
    s = enc.Sealed.new(enc.CustomerKey(KEY, ""))
    assert enc.etag(s, md5) != md5.hex() and len(enc.etag(s, md5)) == 32
