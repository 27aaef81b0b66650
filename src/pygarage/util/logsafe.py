"""Client bytes made safe for a log line: control characters, line and paragraph
separators, backslashes and undecodable bytes are escaped, so a request can never forge a
log line, write a NUL or an escape sequence, or break the log handler's encoding."""

from __future__ import annotations

import logging
import re
import time

# C0 and C1 controls, DEL, Unicode line/paragraph separators, lone surrogates (what
# aiohttp's surrogateescape leaves for non-UTF-8 bytes), and the escape character itself.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\\\\]")

# The same without the backslash: for the last line of defence below, which must leave
# values already escaped by logsafe() as they are.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

MAX_LEN = 2048


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c == "\\":
        return "\\\\"
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # a raw byte kept by surrogateescape
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n <= 0xFF else f"\\u{n:04x}"


def logsafe(value: object, max_len: int = MAX_LEN) -> str:
    """One printable line for the log; bytes that are not UTF-8 show as \\xNN. Longer
    values are cut at max_len characters, with a marker saying so."""
    if isinstance(value, bytes | bytearray):
        s = bytes(value).decode("utf-8", "surrogateescape")
    else:
        s = str(value)
    cut = ""
    if len(s) > max_len:
        s, cut = s[:max_len], f"...({len(s)} chars in all)"
    return _UNSAFE.sub(_escape, s) + cut


class SafeFormatter(logging.Formatter):
    """Escapes control characters in every log message, whoever logs it (our code, aiohttp,
    asyncio): a value that missed logsafe() still cannot forge a line. Tracebacks, added
    after the message, keep their lines."""

    _second = -1
    _second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The default format, with strftime run once per second rather than per line
        # (an access line per request).
        if datefmt is not None or self.datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.time_text(record.created, int(record.msecs))

    def time_text(self, created: float, msecs: int | None = None) -> str:
        """The default asctime of a record created at `created` (time.time()); msecs: the
        record's own, else computed from `created` as Python 3.11's LogRecord does."""
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format,
                                              self.converter(created))
            self._second = second
        if msecs is None:
            msecs = int((created - second) * 1000)
        return f"{self._second_text},{msecs:03d}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def escape_controls(message: str) -> str:
    """The last line of defence: control characters escaped, backslashes left as they are
    (values already escaped by logsafe() stay as they are)."""
    return _CONTROLS.sub(_escape, message)
