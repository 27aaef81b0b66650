"""ByteSemaphore: the bound holds, waiters are served in order, an oversized request proceeds
alone, cancellation gives everything back; and block_ram_buffer_max parsing."""

from __future__ import annotations

import asyncio
import random

import pytest

from pygarage.util.byte_semaphore import ByteSemaphore
from pygarage.util.config import ConfigError, config_from_dict


async def test_bound_holds_under_load() -> None:
    sem = ByteSemaphore(10)
    peak = 0
    rng = random.Random(1)

    async def user(n: int) -> None:
        nonlocal peak
        async with sem.hold(n) as got:
            assert got == min(n, 10)
            peak = max(peak, sem.held)
            assert sem.held <= 10
            await asyncio.sleep(rng.random() / 1000)

    await asyncio.gather(*(user(rng.randint(1, 15)) for _ in range(200)))
    assert sem.held == 0 and peak == 10


async def test_fifo_no_starvation() -> None:
    sem = ByteSemaphore(10)
    order: list[str] = []
    first = await sem.acquire(6)

    async def take(name: str, n: int) -> None:
        got = await sem.acquire(n)
        order.append(name)
        sem.release(got)

    big = asyncio.create_task(take("big", 8))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 2))  # would fit now, but comes after big
    await asyncio.sleep(0.01)
    assert order == []
    sem.release(first)
    await asyncio.gather(big, small)
    assert order == ["big", "small"]


async def test_oversized_request_waits_then_proceeds_alone() -> None:
    changes: list[int] = []
    sem = ByteSemaphore(4, on_change=changes.append)
    a = await sem.acquire(3)
    task = asyncio.create_task(sem.acquire(100))
    await asyncio.sleep(0.01)
    assert not task.done()
    sem.release(a)
    assert await task == 4 and sem.held == 4 and sem.free == 0
    sem.release(4)
    assert changes[-1] == 4 and min(changes) == 0


async def test_cancelled_waiter_gives_back() -> None:
    sem = ByteSemaphore(4)
    held = await sem.acquire(3)
    waiter = asyncio.create_task(sem.acquire(3))
    behind = asyncio.create_task(sem.acquire(1))  # fits, but waits for its turn
    await asyncio.sleep(0)
    assert not behind.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await asyncio.wait_for(behind, 5) == 1  # the cancelled head left the queue
    sem.release(1)
    # Granted and cancelled in the same turn: the grant is returned.
    waiter = asyncio.create_task(sem.acquire(4))
    await asyncio.sleep(0)
    sem.release(held)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert sem.held == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ByteSemaphore(0)


def test_config_sizes() -> None:
    base = {"metadata_dir": "/tmp/m", "data_dir": "/tmp/d", "rpc_bind_addr": "127.0.0.1:1",
            "rpc_secret": "33" * 32, "replication_factor": 1}
    assert config_from_dict(base).block_ram_buffer_max == 256 * 1024 * 1024
    assert config_from_dict({**base, "block_ram_buffer_max": "256M"}).block_ram_buffer_max \
        == 256_000_000
    assert config_from_dict({**base, "block_ram_buffer_max": "2MiB"}).block_ram_buffer_max \
        == 2 * 1024 * 1024
    for bad in ("0", "lots", -5):
        with pytest.raises(ConfigError):
            config_from_dict({**base, "block_ram_buffer_max": bad})
