"""Two RPC nodes (NetApp + Peering, in process) linked through the fault proxy: the proxy
knows who dials by the source IP (rpc_bind_outgoing); a reset cut is seen at once, a
black-holed link only by FAILED_PING_THRESHOLD ping timeouts in a row; healed, they
reconnect by themselves."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from nacl.signing import SigningKey

from pygarage.net.netapp import NetApp
from pygarage.net.peering import FAILED_PING_THRESHOLD, Peering
from pygarage.testing.proxy import BLACKHOLE, FaultProxy

SECRET = secrets.token_bytes(32)
A_IP, B_IP = "127.0.0.31", "127.0.0.32"
PING_INTERVAL, PING_TIMEOUT = 0.2, 0.3


async def _wait(cond: Callable[[], bool], within: float) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not cond():
        if loop.time() - t0 > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.02)
    return loop.time() - t0


async def test_cut_and_blackhole_seen_by_peering() -> None:
    a = NetApp(SECRET, SigningKey.generate(), bind_outgoing=A_IP)
    b = NetApp(SECRET, SigningKey.generate(), bind_outgoing=B_IP)
    await a.listen(A_IP, 0)
    await b.listen(B_IP, 0)
    proxy = FaultProxy()
    await proxy.add_node("a", A_IP, (A_IP, a.port))
    b_addr = await proxy.add_node("b", B_IP, (B_IP, b.port))
    peering = Peering(a, ping_timeout=PING_TIMEOUT, ping_interval=PING_INTERVAL,
                      loop_delay=0.05, retry_min=0.1, retry_max=0.2)
    peering.add_peer(b.id, *b_addr)
    peering.start()
    try:
        await _wait(lambda: peering.is_up(b.id), 5)
        assert proxy.connections("a", "b") == 1  # the dialer was recognised by its IP

        proxy.cut(["a"], ["b"])
        took = await _wait(lambda: not peering.is_up(b.id), 1)
        print(f"reset cut seen after {took * 1000:.0f} ms")
        await asyncio.sleep(0.5)
        assert not peering.is_up(b.id) and proxy.refused >= 1  # retries refused
        proxy.heal()
        await _wait(lambda: peering.is_up(b.id), 3)

        proxy.cut(["a"], ["b"], mode=BLACKHOLE)
        took = await _wait(lambda: not peering.is_up(b.id), 10)
        print(f"black hole seen after {took:.2f} s")
        # Nothing closed the link: only the pings failing in a row did.
        assert took >= (FAILED_PING_THRESHOLD - 1) * PING_INTERVAL + PING_TIMEOUT
        assert proxy.connections("a", "b") >= 1  # the proxy itself dropped nothing
        proxy.heal()
        await _wait(lambda: peering.is_up(b.id), 12)
        rtt = await a.links[b.id].ping(2)
        assert rtt < 0.5
    finally:
        await peering.stop()
        await a.close()
        await b.close()
        await proxy.close()
