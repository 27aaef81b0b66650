"""rpc/write_quorum: the one waiting loop of table, block and RPC writes."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from pygarage.net.peer import RpcError
from pygarage.rpc.write_quorum import SetQuorum, describe, wait_quorum
from pygarage.util.errors import QuorumError


class Refused(Exception):
    pass


async def _after(s: float, exc: BaseException | None = None) -> None:
    await asyncio.sleep(s)
    if exc is not None:
        raise exc


def _calls(spec: dict[str, tuple[float, BaseException | None]]) -> dict[str, Any]:
    return {n: asyncio.ensure_future(_after(s, e)) for n, (s, e) in spec.items()}


async def test_returns_at_the_quorum_of_every_set_leaving_the_slow_one() -> None:
    calls = _calls({"a": (0, None), "b": (0.01, None), "c": (5, None), "d": (0.02, None)})
    q = SetQuorum([["a", "b", "c"], ["b", "c", "d"]], 2)
    await asyncio.wait_for(wait_quorum(calls, q, "w"), 2)
    assert q.ok == {"a", "b", "d"} and not calls["c"].done()
    calls["c"].cancel()


async def test_fails_as_soon_as_a_set_cannot_reach_it_with_the_reasons() -> None:
    calls = _calls({"a": (0, RpcError("link down")), "b": (0.01, ValueError("bad")),
                    "c": (5, None)})
    with pytest.raises(QuorumError, match="write quorum 2 not reached.*link down.*"
                                           "ValueError: bad"):
        await asyncio.wait_for(wait_quorum(calls, SetQuorum([["a", "b", "c"]], 2), "w"), 2)
    assert not calls["c"].done()  # no wait for the slow one: the set was lost already
    calls["c"].cancel()


async def test_a_fatal_error_is_raised_as_it_is() -> None:
    calls = _calls({"a": (0, Refused("no such bucket")), "b": (0.5, None)})
    with pytest.raises(Refused):
        await wait_quorum(calls, SetQuorum([["a", "b"]], 1), "w", fatal=(Refused,))
    calls["b"].cancel()


async def test_no_call_left_means_failure_not_a_hang() -> None:
    with pytest.raises(QuorumError):
        await asyncio.wait_for(wait_quorum({}, SetQuorum([["a"]], 1), "w"), 2)


def test_impossible_sets_are_refused_before_any_call() -> None:
    q = SetQuorum([["a", "b"], ["a", "b", "c"]], 3)
    assert q.impossible()
    with pytest.raises(QuorumError, match="quorum 3 of a 2-node set is impossible"):
        q.check_possible("w")
    SetQuorum([["a", "b", "c"]], 3).check_possible("w")


def test_errors_of_calls_that_ended_unlooked_at_are_not_reported() -> None:
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: seen.append(ctx))
        calls = _calls({"a": (0, Refused("x")), "b": (0, Refused("y")),
                        "c": (0, Refused("z"))})
        await asyncio.sleep(0.01)  # all refused before anyone looks: one is raised
        with pytest.raises(Refused):
            await wait_quorum(calls, SetQuorum([["a", "b", "c"]], 2), "w", fatal=(Refused,))
        calls.clear()
        gc.collect()
    asyncio.run(main())
    gc.collect()
    assert seen == []


def test_describe() -> None:
    assert describe(RpcError("node x: refused")) == "node x: refused"
    assert describe(TimeoutError("slow")) == "TimeoutError: slow"
