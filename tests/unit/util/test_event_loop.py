"""util/event_loop.py: uvloop unless PYGARAGE_EVENT_LOOP=asyncio; anything else refused."""

from __future__ import annotations

import asyncio

import pytest

from pygarage.util import event_loop
from pygarage.util.errors import StartupError


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.run(loop_module()).startswith("uvloop")


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, " Asyncio ")
    assert event_loop.run(loop_module()).startswith("asyncio")


@pytest.mark.parametrize("value", ["tokio", "uvloop2", "ａsyncio"])
def test_anything_else_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(event_loop.ENV, value)
    coro = loop_module()
    with pytest.raises(StartupError, match=event_loop.ENV):
        event_loop.run(coro)
    assert coro.cr_frame is None  # closed: no "never awaited" warning
