"""util.offload: results, errors, cancellation, parallel workers, several event loops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from pygarage.util.offload import Offload


async def test_results_and_errors_come_back_to_their_callers() -> None:
    off = Offload(4)

    def boom(x: int) -> int:
        raise ValueError(f"bad {x}")

    assert await off.run(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ValueError, match="bad 7"):
        await off.run(boom, 7)

    def stop() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await off.run(stop)
    results = await asyncio.gather(*(off.run(lambda i=i: i * i) for i in range(500)))
    assert results == [i * i for i in range(500)]


async def test_blocking_calls_run_in_parallel_up_to_max_threads() -> None:
    off = Offload(4)
    gate = threading.Barrier(4, timeout=5)  # only passes if 4 calls run at once
    await asyncio.gather(*(off.run(gate.wait) for _ in range(4)))  # Broken if not 4 at once
    assert off._threads == 4
    await asyncio.gather(*(off.run(time.sleep, 0.01) for _ in range(20)))
    assert off._threads == 4  # never more than max_threads


async def test_a_cancelled_caller_does_not_stop_the_call_nor_break_the_others() -> None:
    off = Offload(2)
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def slow() -> int:
        started.set()
        release.wait(5)
        ran.append(1)
        return 1

    fut = off.run(slow)
    await asyncio.to_thread(started.wait, 5)
    fut.cancel()
    release.set()
    assert await off.run(lambda: 2) == 2
    for _ in range(100):
        if ran:
            break
        await asyncio.sleep(0.01)
    assert ran == [1]


def test_several_event_loops_each_get_their_own_results() -> None:
    off = Offload(3)
    out: dict[int, list[int]] = {}

    def run_loop(n: int) -> None:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(off.run(lambda i=i: n * 1000 + i)
                                               for i in range(200))))
        out[n] = asyncio.run(main())

    threads = [threading.Thread(target=run_loop, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == {n: [n * 1000 + i for i in range(200)] for n in range(3)}
