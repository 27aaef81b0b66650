"""Flexible checksums: known vectors, botocore as an oracle, header parsing and Content-MD5."""

from __future__ import annotations

import base64
import hashlib
import random
import threading

import pytest
from botocore import httpchecksum

from pygarage.api.common import errors
from pygarage.api.common.signature.checksum import (
    ALGORITHMS,
    Checksummer,
    Checksums,
    content_md5_matches,
    parse_checksum_headers,
    parse_content_md5,
    requested_algorithm,
    verify,
)


def b64int(value: int, size: int) -> str:
    return base64.b64encode(value.to_bytes(size, "big")).decode()


def compute(data: bytes, algos=ALGORITHMS, **kwargs) -> Checksums:
    summer = Checksummer(algos, **kwargs)
    summer.update(data)
    return summer.result()


def test_check_vectors() -> None:
    extra = compute(b"123456789").extra
    assert extra["crc32"] == b64int(0xCBF43926, 4)
    assert extra["crc32c"] == b64int(0xE3069283, 4)
    assert extra["crc64nvme"] == b64int(0xAE8B14860A799888, 8)
    assert extra["sha1"] == base64.b64encode(hashlib.sha1(b"123456789").digest()).decode()
    assert extra["sha256"] == base64.b64encode(hashlib.sha256(b"123456789").digest()).decode()


def test_empty_input() -> None:
    extra = compute(b"").extra
    assert extra["crc32"] == "AAAAAA==" and extra["crc32c"] == "AAAAAA=="
    assert extra["crc64nvme"] == "AAAAAAAAAAA="


@pytest.mark.parametrize("seed", range(8))
def test_matches_botocore_incrementally(seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randint(0, 300_000))
    summer = Checksummer(ALGORITHMS, md5=True, sha256_hex=True)
    oracles = {algo: httpchecksum._CHECKSUM_CLS[algo]()  # type: ignore[attr-defined]
               for algo in ALGORITHMS}
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 70_000)
        summer.update(data[pos:pos + step])
        for oracle in oracles.values():
            oracle.update(data[pos:pos + step])
        pos += step
    result = summer.result()
    assert result.extra == {algo: oracle.b64digest() for algo, oracle in oracles.items()}
    assert result.md5 == hashlib.md5(data).digest()
    assert result.sha256_hex == hashlib.sha256(data).hexdigest()


def test_optional_digests_and_shared_sha256() -> None:
    result = compute(b"abc", algos=[], md5=False)
    assert result == Checksums(md5=None, sha256_hex=None, extra={})
    result = compute(b"abc", algos=["SHA256"], md5=False, sha256_hex=True)
    assert result.sha256_hex == hashlib.sha256(b"abc").hexdigest()
    assert base64.b64decode(result.extra["sha256"]).hex() == result.sha256_hex
    with pytest.raises(ValueError):
        Checksummer(["md4"])


def test_update_from_threads_is_consistent() -> None:
    blocks = [bytes([i]) * 100_000 for i in range(16)]
    summer = Checksummer(["crc32c"])
    lock = threading.Lock()
    done: list[bytes] = []

    def worker(block: bytes) -> None:
        with lock:  # the caller orders blocks; update itself must not corrupt state
            summer.update(block)
            done.append(block)

    threads = [threading.Thread(target=worker, args=(b,)) for b in blocks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert summer.result().extra["crc32c"] == compute(b"".join(done), ["crc32c"]).extra["crc32c"]


def test_parse_checksum_headers() -> None:
    crc = compute(b"x").extra["crc32"]
    assert parse_checksum_headers({"x-amz-checksum-crc32": crc}) == ("crc32", crc)
    assert parse_checksum_headers({"content-type": "a", "x-amz-checksum-mode": "ENABLED",
                                   "x-amz-checksum-type": "FULL_OBJECT",
                                   "x-amz-checksum-algorithm": "CRC32"}) is None
    sha = compute(b"x").extra["sha256"]
    with pytest.raises(errors.InvalidRequest, match="Multiple"):
        parse_checksum_headers({"x-amz-checksum-crc32": crc, "x-amz-checksum-sha256": sha})


@pytest.mark.parametrize(("name", "value"), [
    ("x-amz-checksum-crc32", "AAAA"),  # 3 bytes
    ("x-amz-checksum-crc32", "not base64!"),
    ("x-amz-checksum-crc64nvme", "AAAAAA=="),  # CRC32-sized
    ("x-amz-checksum-sha1", base64.b64encode(b"\0" * 32).decode()),
    ("x-amz-checksum-md4", "AAAAAA=="),
])
def test_parse_checksum_headers_rejects(name: str, value: str) -> None:
    with pytest.raises(errors.InvalidRequest):
        parse_checksum_headers({name: value})


def test_requested_algorithm() -> None:
    assert requested_algorithm({}) is None
    assert requested_algorithm({"x-amz-sdk-checksum-algorithm": "CRC32"}) == "crc32"
    assert requested_algorithm({"x-amz-checksum-algorithm": "crc64nvme"}) == "crc64nvme"
    assert requested_algorithm({"x-amz-trailer": "x-amz-checksum-crc32c"}) == "crc32c"
    assert requested_algorithm({"X-Amz-Trailer": "X-Amz-Checksum-SHA1"}) == "sha1"
    assert requested_algorithm({"x-amz-trailer": "x-amz-meta-foo"}) is None
    with pytest.raises(errors.InvalidRequest):
        requested_algorithm({"x-amz-sdk-checksum-algorithm": "MD4"})


def test_verify() -> None:
    computed = compute(b"hello")
    for algo in ALGORITHMS:
        verify(computed.extra[algo], algo, computed)
    wrong = compute(b"hellO")
    with pytest.raises(errors.BadDigest) as exc:
        verify(wrong.extra["crc32"], "crc32", computed)
    assert exc.value.message == "The CRC32 you specified did not match the calculated checksum."
    with pytest.raises(errors.BadDigest, match="SHA256"):
        verify(wrong.extra["sha256"], "sha256", computed)
    with pytest.raises(errors.InvalidRequest):
        verify("garbage", "crc32c", computed)
    with pytest.raises(ValueError):
        verify(computed.extra["crc32"], "crc32", compute(b"hello", algos=["sha1"]))


def test_content_md5() -> None:
    digest = hashlib.md5(b"data").digest()
    good = base64.b64encode(digest).decode()
    assert content_md5_matches(good, digest)
    assert not content_md5_matches(good, hashlib.md5(b"other").digest())
    assert parse_content_md5(" " + good + " ") == digest
    for bad in ("", "abc", digest.hex(), base64.b64encode(b"x" * 15).decode(), "!!!!"):
        with pytest.raises(errors.InvalidDigest):
            content_md5_matches(bad, digest)
