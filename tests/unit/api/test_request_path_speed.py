"""The request path's shortcuts (httpspeed) answer exactly what the slower code answered."""

from __future__ import annotations

import email.utils
import logging
import random

import pytest

from pygarage.api.common import errors
from pygarage.api.common.signature import sigv4
from pygarage.api.s3.conditions import http_date
from pygarage.util.logsafe import SafeFormatter


def test_http_date_is_formatdate() -> None:
    rnd = random.Random(5)
    samples = [0, 999, 1_000, 951_782_400_000, 4_102_444_799_999]
    samples += [rnd.randrange(0, 2**42) for _ in range(20_000)]
    for ms in samples:
        assert http_date(ms) == email.utils.formatdate(ms // 1000, usegmt=True), ms


def test_amz_date_cache_never_accepts_what_the_parser_refuses() -> None:
    good = "20261202T061500Z"
    assert sigv4._parse_amz_date(good) == sigv4._parse_amz_date_uncached(good)
    assert sigv4._parse_amz_date(good) is sigv4._parse_amz_date(good)  # cached
    for bad in ("20261302T061500Z", "20261202T061500", "2026120aT061500Z"):
        for _ in range(2):  # a refusal is not cached as anything
            with pytest.raises(errors.AccessDenied):
                sigv4._parse_amz_date(bad)
    for i in range(200):  # bounded
        sigv4._parse_amz_date(f"20261202T06{i // 60 % 60:02d}{i % 60:02d}Z")
    assert len(sigv4._dates) <= 64


def test_canonical_value_fast_path_is_the_regex() -> None:
    for v in ["a", " a ", "a  b", "a\tb", "\ta b\t", "a \t b", "x" * 50, "a b", "", "  "]:
        expected = sigv4._BLANKS.sub(" ", v.strip(" \t"))
        assert sigv4._canonical_value([v]) == expected
    assert sigv4._canonical_value(["a  b", " c "]) == "a b,c"


def test_safe_formatter_time_is_the_default_format() -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    ours, stock = SafeFormatter(fmt), logging.Formatter(fmt)
    for created in (1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.999, 1_700_000_001.001,
                    1_700_003_600.25):
        rec = logging.LogRecord("pygarage.x", logging.INFO, __file__, 1, "hello %s", ("w",),
                                None)
        rec.created, rec.msecs = created, int((created - int(created)) * 1000)
        assert ours.format(rec) == stock.format(rec)
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "a\nb", (), None)
    assert "\n" not in SafeFormatter(fmt).format(rec)


@pytest.mark.parametrize("n", [0, 1, 2046, 2047, 2048, 4096, 10_000, 65_536, 65_537, 200_000])
def test_checksummer_small_bodies_hashed_in_pieces_give_the_same_digests(n: int) -> None:
    from pygarage.api.common.signature import checksum as ck
    data = random.Random(n).randbytes(n)
    algos = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"]
    pieces = ck.Checksummer(algos, md5=True, sha256_hex=True)
    pieces.update(data)  # this test runs in the main thread: the sliced path up to 64 KiB
    whole = ck.Checksummer(algos, md5=True, sha256_hex=True)
    whole._update(data)
    assert pieces.result() == whole.result()
