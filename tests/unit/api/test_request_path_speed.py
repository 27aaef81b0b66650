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


def test_access_log_line_is_what_logger_info_writes() -> None:
    """access_log.info writes, on the handler setup_logging configured, exactly the line
    Logger.info would; with any other handler or filter in the way, it is Logger.info."""
    import io
    import re

    from pygarage.util import access_log

    fmt = access_log.FORMAT
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter(fmt))
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, access_log._direct)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    access_log.install(handler)
    logger = logging.getLogger("pygarage.api.s3.test_access")
    try:
        msg = "GetObject GET /b/k\\x0a\x00\u2028 -> 200 (0.5 ms)"
        access_log.info(logger, msg)
        logger.info("%s", msg)
        fast, slow = stream.getvalue().splitlines()
        # The same line but for the clock's milliseconds between the two calls.
        stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
        assert stamp.match(fast) and stamp.match(slow)
        assert fast[24:] == slow[24:]
        assert "\x00" not in fast and "\u2028" not in fast and "\\x0a" in fast
        # Another handler (a test's capture, an embedding app): Logger.info reaches both.
        other = io.StringIO()
        root.addHandler(logging.StreamHandler(other))
        access_log.info(logger, "second")
        assert other.getvalue() == "second\n"
        assert stream.getvalue().splitlines()[-1].endswith(": second")
        root.handlers[:] = [handler]
        # A filter on the logger is honoured (the fast path would skip it).
        logger.addFilter(lambda record: False)
        access_log.info(logger, "filtered")
        assert "filtered" not in stream.getvalue()
        logger.filters.clear()
        # Another formatter on our handler: Logger.info, formatted by it.
        handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
        access_log.info(logger, "plain")
        assert stream.getvalue().splitlines()[-1] == "INFO|plain"
        handler.setFormatter(SafeFormatter(fmt))
        # Below the level: nothing.
        logger.setLevel(logging.WARNING)
        access_log.info(logger, "quiet")
        assert "quiet" not in stream.getvalue()
    finally:
        logger.setLevel(logging.NOTSET)
        logger.filters.clear()
        root.handlers[:], level, access_log._direct = saved
        root.setLevel(level)
