"""Pure helpers of the front-end hardening: log escaping, log rate limiting (injected
clock), the connection cap derived from the open-file limit."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pygarage.util.fdlimit import RESERVED_FDS, connection_cap
from pygarage.util.logsafe import logsafe
from pygarage.util.ratelimit import LogRateLimiter
from pygarage.util.throttled_log import ThrottledLog


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000

    def now_msec(self) -> int:
        return self.t


# ------------------------------------------------------------------ logsafe

@pytest.mark.parametrize(("raw", "safe"), [
    ("/bucket/key.txt", "/bucket/key.txt"),
    ("/b/é ü 日本", "/b/é ü 日本"),
    ("/a\nFORGED line", "/a\\x0aFORGED line"),
    ("a\r\nb", "a\\x0d\\x0ab"),
    ("nul\x00", "nul\\x00"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("del\x7f c1\x85", "del\\x7f c1\\x85"),
    ("sep\u2028par\u2029", "sep\\u2028par\\u2029"),
    ("back\\x0a", "back\\\\x0a"),  # a literal backslash cannot fake an escape
    ("bad\udcff", "bad\\xff"),  # surrogateescape'd byte from a non-UTF-8 header
    (b"bytes\xff\n", "bytes\\xff\\x0a"),
    (ValueError("e\nf"), "e\\x0af"),
])
def test_logsafe_escapes_control_characters(raw: object, safe: str) -> None:
    assert logsafe(raw) == safe


def test_logsafe_output_is_one_encodable_line() -> None:
    every = "".join(chr(c) for c in [*range(0x3000), *range(0xD800, 0xE000), 0x10FFFF])
    out = logsafe(every, max_len=len(every))
    assert "\n" not in out and "\r" not in out and "\x00" not in out
    out.encode("utf-8")  # no lone surrogate left: the log handler cannot fail on it
    assert len(out.splitlines()) == 1


def test_logsafe_cuts_long_values() -> None:
    out = logsafe("x" * 5000, max_len=100)
    assert out.startswith("x" * 100) and out.endswith("...(5000 chars in all)")


# ------------------------------------------------------------------ rate limiter

def test_rate_limiter_first_event_reported_then_held_for_the_interval() -> None:
    clock = FakeClock()
    lim = LogRateLimiter(10_000, clock)
    assert lim.hit() == 1
    for _ in range(100_000):  # a flood inside the interval: nothing to log
        assert lim.hit() is None
    assert lim.pending == 100_000
    clock.t += 9_999
    assert lim.hit() is None and lim.due() is None
    assert lim.msec_until_due() == 1
    clock.t += 1
    assert lim.hit() == 100_002  # the held ones, counted, in one line
    assert lim.pending == 0


def test_rate_limiter_trailing_summary_and_quiet_when_idle() -> None:
    clock = FakeClock()
    lim = LogRateLimiter(1_000, clock)
    assert lim.hit() == 1
    assert lim.hit() is None and lim.hit() is None
    clock.t += 5_000
    assert lim.due() == 2  # reported after the events stopped
    assert lim.due() is None  # nothing pending: nothing to say
    assert lim.hit() is None  # that trailing line opened a new interval
    clock.t += 1_000
    assert lim.hit() == 2  # the held one and this one


def test_throttled_log_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    t = ThrottledLog("thing happened", logging.WARNING, 10_000, clock)
    with caplog.at_level(logging.INFO):
        for _ in range(1000):
            t.hit()
        clock.t += 10_000
        t.hit()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["thing happened: 1 time(s) (at most one line per 10 s)",
                     "thing happened: 1000 time(s) (at most one line per 10 s)"]
    assert all(r.exc_info is None for r in caplog.records)


# ------------------------------------------------------------------ connection cap

def test_connection_cap_stays_below_the_fd_limit() -> None:
    assert connection_cap(4096, 1 << 20) == 4096
    assert connection_cap(4096, 1024) == 1024 - RESERVED_FDS
    assert connection_cap(4096, 100) == 16  # never zero: the node must stay reachable
    assert connection_cap(40, 20000) == 40


# ------------------------------------------------------------------ config keys

_BASE = {"metadata_dir": "/m", "data_dir": "/d", "rpc_bind_addr": "[::]:3901",
         "rpc_secret": "11" * 32, "replication_factor": 1}


def test_http_guard_config_keys() -> None:
    from pygarage.util.config import config_from_dict
    c = config_from_dict(dict(_BASE))
    assert c.http_max_connections == 4096 and c.http_header_timeout_msec == 20_000
    c = config_from_dict(dict(_BASE, http_max_connections=50, http_header_timeout_msec=1500))
    assert c.http_max_connections == 50 and c.http_header_timeout_msec == 1500


@pytest.mark.parametrize("bad", [{"http_max_connections": 0},
                                 {"http_max_connections": "many"},
                                 {"http_max_connections": True},
                                 {"http_header_timeout_msec": 0},
                                 {"http_header_timeout_msec": 1.5}])
def test_http_guard_config_keys_refused_when_invalid(bad: dict[str, object]) -> None:
    from pygarage.util.config import ConfigError, config_from_dict
    with pytest.raises(ConfigError, match=next(iter(bad))):
        config_from_dict(dict(_BASE, **bad))


def test_safe_formatter_escapes_any_message_but_keeps_tracebacks() -> None:
    from pygarage.util.logsafe import SafeFormatter
    f = SafeFormatter("%(levelname)s %(message)s")
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "GET %s", ("/a\nFORGED\x00",),
                            None)
    assert f.format(rec) == "INFO GET /a\\x0aFORGED\\x00"
    # Already escaped by logsafe(): left as it is, not escaped twice.
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (logsafe("a\nb"),), None)
    assert f.format(rec) == "INFO a\\x0ab"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = f.format(rec)
    assert out.startswith("ERROR failed\nTraceback") and "ValueError: boom" in out


# ------------------------------------------------------------------ connection guard

class FakeConn:
    """What the guard uses of a connection handler."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False
        self.guard_counted = False
        self.guard_deadline = 0.0
        self.guard_timer: asyncio.TimerHandle | None = None

    def force_close(self) -> None:
        self.closed = True


def test_guard_evicts_the_longest_waiting_and_refuses_when_all_busy() -> None:
    from pygarage.api.common.connections import ConnectionGuard

    async def run() -> None:
        g = ConnectionGuard(max_connections=3, header_timeout=60)
        a, b, c, d, e = (FakeConn(n) for n in "abcde")
        for conn in (a, b, c):
            g.opened(conn)  # type: ignore[arg-type]
        g.busy(a)  # type: ignore[arg-type]  # a sent its request
        g.opened(d)  # type: ignore[arg-type]  # over the cap: b waited longest
        assert b.closed and not a.closed and not c.closed and not d.closed
        g.closed(b)  # type: ignore[arg-type]
        g.idle(c)  # type: ignore[arg-type]  # c finished a response: now the newest
        g.opened(e)  # type: ignore[arg-type]
        assert d.closed and not c.closed
        g.closed(d)  # type: ignore[arg-type]
        for conn in (c, e):
            g.busy(conn)  # type: ignore[arg-type]
        f = FakeConn("f")
        g.opened(f)  # type: ignore[arg-type]  # everyone busy: the newcomer is refused
        assert f.closed and not any(x.closed for x in (a, c, e))
        g.closed(f)  # type: ignore[arg-type]
        assert g.count == 3 and g.waiting == 0
        for conn in (a, c, e):
            g.closed(conn)  # type: ignore[arg-type]
        assert g.count == 0

    asyncio.run(run())


def test_guard_header_deadline_counts_from_connection_or_last_response() -> None:
    from pygarage.api.common.connections import ConnectionGuard

    async def run() -> None:
        g = ConnectionGuard(max_connections=10, header_timeout=0.2)
        slow, quick = FakeConn("slow"), FakeConn("quick")
        g.opened(slow)  # type: ignore[arg-type]
        g.opened(quick)  # type: ignore[arg-type]
        for _ in range(3):  # quick: a request every 0.1 s, each within its deadline
            await asyncio.sleep(0.1)
            g.busy(quick)  # type: ignore[arg-type]
            g.idle(quick)  # type: ignore[arg-type]
        assert slow.closed and not quick.closed
        await asyncio.sleep(0.3)  # quick then sends nothing more
        assert quick.closed

    asyncio.run(run())
