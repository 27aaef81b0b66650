"""Worker variables, the tranquilizer and the runner's throttled state (pure or in-loop)."""

from __future__ import annotations

import asyncio

import pytest

from pygarage.testing.waits import until
from pygarage.util.background import (
    BackgroundRunner,
    BgVars,
    Throttled,
    Tranquilizer,
    VarError,
    WorkerState,
    parse_int_var,
)


def test_bg_vars_get_set_and_refusals() -> None:
    v = BgVars()
    box = {"n": 4}

    def set_n(s: str) -> None:
        box["n"] = parse_int_var("n", s, 0, 10)

    v.register("n", lambda: box["n"], set_n)
    v.register("ro", lambda: "fixed")

    async def picky(s: str) -> None:
        raise ValueError("picky must be blue")

    v.register("picky", lambda: "red", picky)
    assert v.get_all() == {"n": "4", "picky": "red", "ro": "fixed"}
    asyncio.run(v.set("n", " 7 "))
    assert v.get("n") == "7"
    for name, value, msg in (("nope", "1", "unknown worker variable 'nope'"),
                             ("ro", "x", "read-only"), ("n", "x", "invalid value"),
                             ("n", "11", "from 0 to 10"), ("picky", "x", "must be blue")):
        with pytest.raises(VarError, match=msg):
            asyncio.run(v.set(name, value))
    assert v.get("n") == "7"
    with pytest.raises(VarError, match="known: n, picky, ro"):
        v.get("nope")
    with pytest.raises(ValueError):
        v.register("n", lambda: 1)


def test_tranquilizer_sleeps_in_proportion_to_work() -> None:
    now = [0.0]
    t = Tranquilizer(observations=3, clock=lambda: now[0])
    t.reset()
    now[0] += 0.010
    assert t.delay(2) == pytest.approx(0.020)
    t.reset()
    now[0] += 0.030
    assert t.delay(2) == pytest.approx(0.040)  # average of 10 and 30 ms, times 2
    t.reset()
    assert t.throttle(0) is WorkerState.BUSY
    t.reset()
    now[0] += 0.010
    assert t.throttle(1) == Throttled(pytest.approx((0.030 + 0.0 + 0.010) / 3))


def test_runner_reports_throttled_then_done() -> None:
    class W:
        name = "w"

        def __init__(self) -> None:
            self.n = 0

        async def work(self) -> WorkerState | Throttled:
            self.n += 1
            return Throttled(0.2) if self.n == 1 else WorkerState.DONE

        async def wait_for_work(self) -> None:
            raise AssertionError

        def status(self) -> dict[str, object]:
            return {}

    async def main() -> None:
        r = BackgroundRunner()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tid = r.spawn(W())
        await asyncio.sleep(0.05)
        info = r.workers[tid]
        assert info.state is WorkerState.THROTTLED and info.throttle_secs == 0.2
        await until(lambda: info.state is WorkerState.DONE, within_s=5)
        assert loop.time() - t0 >= 0.2  # it did wait its throttle
        await r.shutdown()

    asyncio.run(main())
