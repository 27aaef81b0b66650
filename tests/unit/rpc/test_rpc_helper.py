"""RpcHelper's quorum logic on an in-memory network (pygarage.testing.loopback_rpc): local
calls skip the network, quorum calls ask only as many nodes as needed and move on when one
fails or is slow, writes to overlapping sets call each node once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pygarage.net.peer import IncomingRequest, RpcError
from pygarage.rpc import rpc_helper
from pygarage.rpc.rpc_helper import RpcHelper
from pygarage.testing.loopback_rpc import LoopbackNet
from pygarage.testing.waits import until
from pygarage.util.errors import QuorumError

A, B, C, D = ("aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32)
ZONES = {A: "z1", B: "z2", C: "z3", D: "z4"}


def cluster(*nodes: str) -> tuple[LoopbackNet, dict[str, RpcHelper]]:
    net = LoopbackNet()
    helpers = {n: net.node(n, ZONES) for n in nodes}
    for n, h in helpers.items():
        async def echo(req: IncomingRequest, me: str = n) -> Any:
            if req.body == "fail":
                raise RpcError(f"{me[:2]} refuses")
            return [me, req.body]
        h.register("echo", echo)
    return net, helpers


def remote_calls(net: LoopbackNet, path: str = "echo") -> list[str]:
    return [callee for _, callee, p in net.calls if p == path]


async def test_local_call_runs_the_handler_directly() -> None:
    net, h = cluster(A, B)
    assert await h[A].call_body(A, "echo", b"x") == [A, b"x"]
    assert net.calls == []
    with pytest.raises(RpcError, match="no stream"):
        await h[A].call(A, "echo", None, stream=b"data")
    assert await h[A].call_body(B, "echo", b"y") == [B, b"y"]  # through msgpack
    assert remote_calls(net) == [B]


async def test_quorum_call_asks_only_the_quorum_first() -> None:
    net, h = cluster(A, B, C)
    replies = await h[A].try_call_many([C, B, A], "echo", "q", 2)
    assert len(replies) == 2 and (A, [A, "q"]) in replies  # this node is asked first
    assert len(remote_calls(net)) == 1


async def test_quorum_call_moves_on_after_failures() -> None:
    net, h = cluster(A, B, C)
    net.down.add(B)
    replies = await h[A].try_call_many([A, B, C], "echo", "q", 2)
    assert {n for n, _ in replies} == {A, C}
    net.down.add(C)
    with pytest.raises(QuorumError) as e:
        await h[A].try_call_many([A, B, C], "echo", "q", 2)
    assert "1 of the 2 answers" in str(e.value) and "not connected" in str(e.value)
    # A remote handler's error counts as a failure too, with its message.
    net.down.clear()
    with pytest.raises(QuorumError, match="refuses"):
        await h[A].try_call_many([B, C], "echo", lambda n: "fail", 1)


async def test_quorum_call_per_node_body_and_impossible_quorum() -> None:
    net, h = cluster(A, B, C)
    replies = await h[A].try_call_many([B, C], "echo", lambda n: n[:2], 2)
    assert sorted(r for _, r in replies) == [[B, "bb"], [C, "cc"]]
    with pytest.raises(QuorumError, match="impossible"):
        await h[A].try_call_many([B, C], "echo", "q", 3)


async def test_slow_node_is_hedged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc_helper, "_HEDGE_AFTER_S", 0.05)
    net, h = cluster(A, B, C)
    net.delay[B] = 2.0
    t0 = time.monotonic()
    # Node B comes before C in the request order (same zone as the caller).
    zones = dict(ZONES, **{B: "z1"})
    h[A].system.zones.update(zones)  # type: ignore[attr-defined]
    replies = await h[A].try_call_many([A, B, C], "echo", "q", 2)
    assert time.monotonic() - t0 < 1.0
    assert {n for n, _ in replies} == {A, C}
    assert remote_calls(net) == [B, C]


async def test_send_all_returns_at_quorum_and_the_rest_finish() -> None:
    net, h = cluster(A, B, C)
    net.delay[C] = 0.3
    seen: list[str] = []

    async def store(req: IncomingRequest, me: str) -> None:
        seen.append(me)
    for n in (A, B, C):
        h[n].register("store", lambda req, me=n: store(req, me))
    replies = await h[A].try_call_many([A, B, C], "store", None, 2, send_all=True)
    assert {n for n, _ in replies} == {A, B} and C not in seen
    assert sorted(remote_calls(net, "store")) == [B, C]  # all asked at once
    await until(lambda: C in seen, within_s=5)  # the third copy, written after the answer


async def test_write_sets_overlapping_call_each_node_once() -> None:
    net, h = cluster(A, B, C, D)
    sets = [[A, B, C], [B, C, D]]
    await h[A].try_write_many_sets(sets, "echo", "w", 2)
    await asyncio.sleep(0)
    assert sorted(remote_calls(net)) == [B, C, D]  # B and C once though in both sets
    # A and D down: B and C give each set its quorum.
    net.down |= {A, D}
    await h[B].try_write_many_sets(sets, "echo", "w", 2)
    # B and D down: the second set has only C.
    net.down = {B, D}
    with pytest.raises(QuorumError, match="not reached"):
        await h[A].try_write_many_sets(sets, "echo", "w", 2)
    net.down = set()
    with pytest.raises(QuorumError, match="impossible"):
        await h[A].try_write_many_sets([[A, B]], "echo", "w", 3)


async def test_write_sets_wait_for_the_quorum_of_every_set() -> None:
    net, h = cluster(A, B, C, D)
    net.delay[D] = 0.3  # the second set's quorum needs D (C fails)
    t0 = time.monotonic()
    await h[A].try_write_many_sets([[A, B], [C, D]], "echo",
                                   lambda n: "fail" if n == C else "w", 1)
    assert time.monotonic() - t0 >= 0.25


async def test_a_refused_answer_counts_as_a_failure() -> None:
    net, h = cluster(A, B, C)

    def check(reply: Any) -> str:
        if reply[0] == B:
            raise ValueError("not what was asked")
        return str(reply[0])
    replies = await h[A].try_call_many([A, B, C], "echo", "q", 2, check=check)
    assert sorted(replies) == [(A, A), (C, C)]
    net.down.add(C)
    with pytest.raises(QuorumError, match="bad answer: not what was asked"):
        await h[A].try_call_many([A, B, C], "echo", "q", 2, check=check)
