"""click parameter types for sizes, durations and optional limits."""

from __future__ import annotations

from typing import Any

import click

from pygarage.cli.fmt import parse_duration, parse_size

__all__ = ["DURATION", "OPTIONAL_COUNT", "OPTIONAL_SIZE", "SIZE", "DurationParam", "SizeParam"]


class SizeParam(click.ParamType):
    """A byte size such as `10G`, `1TB`, `512MiB` or a bare number of bytes.

    With `allow_none`, the word `none` gives None (used to lift a quota).
    """

    name = "size"

    def __init__(self, *, allow_none: bool = False) -> None:
        self.allow_none = allow_none

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        if value is None or isinstance(value, int):
            return value
        if self.allow_none and str(value).strip().lower() == "none":
            return None
        try:
            return parse_size(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


class OptionalCountParam(click.ParamType):
    """A non-negative integer, or `none`."""

    name = "count"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "none":
            return None
        # ASCII only: isdigit() also accepts "\u00b2" (int() then raises) and int() reads
        # other scripts' digits; more than 19 digits can exceed what the admin API takes (u64).
        if not (text.isascii() and text.isdigit()) or len(text) > 19:
            self.fail(f"expected a number or 'none', got {value!r}", param, ctx)
        return int(text)


class DurationParam(click.ParamType):
    """A duration such as `30s`, `10m`, `2h`, `1d`; converted to seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


SIZE = SizeParam()
OPTIONAL_SIZE = SizeParam(allow_none=True)
OPTIONAL_COUNT = OptionalCountParam()
DURATION = DurationParam()
