"""Keep links up to known peers (asyncio): connect, reconnect with exponential backoff,
ping every PING_INTERVAL to measure RTT, and close a link after FAILED_PING_THRESHOLD
pings in a row went unanswered within the ping timeout (rpc_ping_timeout_msec), so that
a dead peer is noticed and reconnected. Which peers exist is the membership layer's
business (rpc/): it calls add_peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .netapp import NetApp
from .peer import RpcError

log = logging.getLogger("pygarage.net")

# Garage's values (net/peering.rs); the retry interval grows from RETRY_MIN to its 30 s.
PING_INTERVAL = 15.0
FAILED_PING_THRESHOLD = 4
LOOP_DELAY = 1.0
RETRY_MIN = 1.0
RETRY_MAX = 30.0


@dataclass
class PeerState:
    host: str
    port: int
    retries: int = 0
    next_try: float = 0.0
    failed_pings: int = 0
    last_ping: float = float("-inf")
    last_seen: float | None = None  # loop time of the last successful ping or connect
    rtt: float | None = None
    busy: bool = False  # a connect or ping is under way


class Peering:
    def __init__(self, app: NetApp, *, ping_timeout: float = 10.0,
                 ping_interval: float = PING_INTERVAL, loop_delay: float = LOOP_DELAY,
                 retry_min: float = RETRY_MIN, retry_max: float = RETRY_MAX):
        self.app = app
        self.ping_timeout = ping_timeout
        self.ping_interval = ping_interval
        self.loop_delay = loop_delay
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.peers: dict[bytes, PeerState] = {}
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    def add_peer(self, node_id: bytes, host: str, port: int) -> None:
        st = self.peers.get(node_id)
        if st is None:
            self.peers[node_id] = PeerState(host, port)
        elif (st.host, st.port) != (host, port):
            st.host, st.port, st.retries, st.next_try = host, port, 0, 0.0

    def is_up(self, node_id: bytes) -> bool:
        link = self.app.links.get(node_id)
        return link is not None and not link.closed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for t in [self._task, *self._jobs]:
            if t is not None:
                t.cancel()
        for t in [self._task, *self._jobs]:
            if t is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.loop_delay)

    def tick(self) -> None:
        """One pass: start the connects and pings that are due."""
        now = asyncio.get_running_loop().time()
        for node_id, st in self.peers.items():
            if st.busy or node_id == self.app.id:
                continue
            if not self.is_up(node_id):
                if now >= st.next_try:
                    self._spawn(st, self._connect(node_id, st))
            elif now - st.last_ping >= self.ping_interval:
                st.last_ping = now
                self._spawn(st, self._ping(node_id, st))

    def _spawn(self, st: PeerState, coro: Coroutine[Any, Any, None]) -> None:
        st.busy = True
        task = asyncio.create_task(coro)
        self._jobs.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._jobs.discard(t)
            st.busy = False

        task.add_done_callback(done)

    async def _connect(self, node_id: bytes, st: PeerState) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self.app.connect(st.host, st.port, expected=node_id)
        except RpcError as e:
            delay = min(self.retry_max, self.retry_min * 2 ** st.retries)
            st.retries += 1
            st.next_try = loop.time() + delay
            log.info("cannot connect to node %s at %s:%d (%s); retrying in %.0f s",
                     node_id.hex()[:16], st.host, st.port, e, delay)
            return
        st.retries, st.failed_pings = 0, 0
        st.last_seen = st.last_ping = loop.time()
        log.info("connected to node %s at %s:%d", node_id.hex()[:16], st.host, st.port)

    async def _ping(self, node_id: bytes, st: PeerState) -> None:
        link = self.app.links.get(node_id)
        if link is None:
            return
        try:
            st.rtt = await link.ping(self.ping_timeout)
        except RpcError as e:
            st.failed_pings += 1
            log.info("ping to node %s failed (%d in a row): %s", node_id.hex()[:16],
                     st.failed_pings, e)
            if st.failed_pings >= FAILED_PING_THRESHOLD:
                link.close()
                st.failed_pings = 0
            return
        st.failed_pings = 0
        st.last_seen = asyncio.get_running_loop().time()
