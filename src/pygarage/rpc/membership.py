"""Membership (asyncio): which nodes form the cluster and how they are doing.

- Peers come from bootstrap_peers, the persisted peer list (metadata_dir/peer_list),
  `garage node connect`, and gossip: nodes exchange the lists of peers they know, so every
  node finds every other. net/peering.py keeps the links up and pings them.
- On a new link to a known node, and every STATUS_INTERVAL, nodes exchange their status
  (Garage's NodeStatus: hostname, disk space, layout digest, public RPC address). A peer
  that gives no public address is reached at the IP its link comes from, with its RPC
  port (Garage's autodiscovery).
- Layout gossip: a changed layout history is pushed to every peer; a status advertising
  another layout digest makes us pull the peer's history. Histories are merged
  (rpc/layout/history.py) and persisted; a merge that changed ours is pushed on.

Links from a node id that is not a known peer (the CLI's links) are served but never
called: a node becomes known once it sends its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..net.peer import IncomingRequest, RpcError
from ..util.config import Config, ConfigError, split_host_port
from ..util.peer_addr import PeerAddrError, format_addr, own_public_addr, parse_peer
from .layout.history import LayoutHistory
from .layout.version import LayoutError
from .peer_list import load_peer_list, save_peer_list

if TYPE_CHECKING:
    from ..net.server import RpcServer
    from .system import System

log = logging.getLogger(__name__)

# Garage's STATUS_EXCHANGE_INTERVAL; peer lists are exchanged as often, and at once when a
# node learns a new peer.
STATUS_INTERVAL = 10.0
TICK = 1.0
GOSSIP_DELAY = 0.1  # coalesces a burst of layout changes into one push
CALL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0

P_STATUS = "system/status"
P_PEERS = "system/peers"
P_LAYOUT_PULL = "system/layout/pull"
P_LAYOUT_PUSH = "system/layout/push"


def _partition(v: Any) -> dict[str, int] | None:
    if isinstance(v, dict) and all(isinstance(v.get(k), int) for k in ("available", "total")):
        return {"available": int(v["available"]), "total": int(v["total"])}
    return None


def _short_str(v: Any, limit: int = 256) -> str | None:
    return v[:limit] if isinstance(v, str) else None


class Membership:
    def __init__(self, system: System, rpc: RpcServer, config: Config, *,
                 status_interval: float = STATUS_INTERVAL, tick: float = TICK):
        self.system = system
        self.app = rpc.app
        self.peering = rpc.peering
        self.config = config
        self.status_interval = status_interval
        self.tick = tick
        self.public_addr = own_public_addr(config.rpc_public_addr, config.rpc_bind_addr)
        self.rpc_port = split_host_port(config.rpc_bind_addr)[1]
        self.status: dict[bytes, dict[str, Any]] = {}  # the last status each peer sent
        self.last_seen: dict[bytes, int] = {}  # msec (system clock) we last saw a link up
        self._saved_peers: dict[bytes, tuple[str, int]] = {}
        self._peers_changed = False
        self._pulling: set[bytes] = set()
        self._push_task: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        for path, handler in ((P_STATUS, self._h_status), (P_PEERS, self._h_peers),
                              (P_LAYOUT_PULL, self._h_layout_pull),
                              (P_LAYOUT_PUSH, self._h_layout_push)):
            self.app.register(path, handler)
        self._saved_peers = load_peer_list(self.config.metadata_dir)
        peers = dict(self._saved_peers)
        for entry in self.config.bootstrap_peers:
            node, host, port = parse_peer(entry)  # validated with the config
            peers[node] = (host, port)
        for node, (host, port) in peers.items():
            if node != self.app.id:
                self.peering.add_peer(node, host, port)
        self.app.on_link.append(self._on_link)
        self.system.on_layout_saved.append(self._layout_changed)
        self.system.membership = self
        self._loop_task = asyncio.create_task(self._run())
        log.info("membership: %d known peer(s), public RPC address %s", len(peers),
                 self.public_addr or "(as seen by peers)")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, self._push_task, *self._jobs) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._save_peers()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    # ------------------------------------------------------------------ what we know

    def my_status(self) -> dict[str, Any]:
        local = self.system.local_status()
        return {"hostname": local["hostname"], "garageVersion": local["garageVersion"],
                "rpcPort": self.rpc_port, "publicAddr": self.public_addr,
                "dataPartition": local["dataPartition"],
                "metadataPartition": local["metadataPartition"],
                "replicationFactor": self.config.replication_factor,
                "layoutDigest": list(self.system.layout.digest())}

    def is_up(self, node: bytes) -> bool:
        return self.peering.is_up(node)

    def known_nodes(self) -> list[dict[str, Any]]:
        """Ourselves, every peer we know, and every node the layout names."""
        now = self.system.clock.now_msec()
        out = [dict(self.system.local_status(), isUp=True, lastSeenSecsAgo=None)]
        h = self.system.layout
        ids = set(self.peering.peers) | {bytes.fromhex(n) for n in h.all_nodes()} | {
            bytes.fromhex(n) for n, r in h.staged_roles().items() if r is not None}
        ids.discard(self.app.id)
        for n in sorted(ids):
            st = self.status.get(n, {})
            ps = self.peering.peers.get(n)
            up = self.is_up(n)
            seen = self.last_seen.get(n)
            out.append({"id": n.hex(), "hostname": st.get("hostname"),
                        "addr": format_addr(ps.host, ps.port) if ps else None,
                        "garageVersion": st.get("garageVersion"), "isUp": up,
                        "lastSeenSecsAgo": None if up or seen is None
                        else max(0, (now - seen) // 1000),
                        "dataPartition": st.get("dataPartition"),
                        "metadataPartition": st.get("metadataPartition")})
        return out

    def _shared_peers(self) -> list[str]:
        """Peers worth telling others about: up now, or confirmed by a status."""
        return [f"{n.hex()}@{format_addr(ps.host, ps.port)}"
                for n, ps in self.peering.peers.items()
                if n != self.app.id and (self.is_up(n) or n in self.status)]

    def _up_peers(self) -> list[bytes]:
        return [n for n in self.peering.peers if n != self.app.id and self.is_up(n)]

    def _learn(self, node: bytes, host: str, port: int, *, update: bool) -> None:
        if node == self.app.id:
            return
        ps = self.peering.peers.get(node)
        if ps is None or (update and (ps.host, ps.port) != (host, port)):
            self.peering.add_peer(node, host, port)
            self._peers_changed = True
            log.info("learned node %s at %s", node.hex()[:16], format_addr(host, port))

    def _save_peers(self) -> None:
        current = {n: (ps.host, ps.port) for n, ps in self.peering.peers.items()}
        if current != self._saved_peers:
            try:
                save_peer_list(self.config.metadata_dir, current)
            except OSError as e:
                log.warning("cannot write the peer list: %s", e)
                return
            self._saved_peers = current

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        last_status = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.tick)
            now = self.system.clock.now_msec()
            for n in self.peering.peers:
                if self.is_up(n):
                    self.last_seen[n] = now
            self._save_peers()
            loop_now = asyncio.get_running_loop().time()
            periodic = loop_now - last_status >= self.status_interval
            if periodic:
                last_status = loop_now
            if periodic or self._peers_changed:
                changed, self._peers_changed = self._peers_changed, False
                for n in self._up_peers():
                    if periodic:
                        self._spawn(self._send_status(n))
                    self._spawn(self._exchange_peers(n))
                if changed:
                    self._save_peers()

    def _on_link(self, link: Any) -> None:
        node: bytes = link.peer_id
        if node in self.peering.peers:
            self.last_seen[node] = self.system.clock.now_msec()
            self._spawn(self._hello(node))

    async def _hello(self, node: bytes) -> None:
        await self._send_status(node)
        await self._exchange_peers(node)

    async def _call(self, node: bytes, path: str, body: Any) -> Any:
        resp, _ = await self.app.call(node, path, body, timeout_s=CALL_TIMEOUT)
        return resp

    async def _send_status(self, node: bytes) -> None:
        try:
            resp = await self._call(node, P_STATUS, self.my_status())
            self._got_status(node, resp)
        except RpcError as e:
            log.debug("status exchange with %s failed: %s", node.hex()[:16], e)

    async def _exchange_peers(self, node: bytes) -> None:
        try:
            resp = await self._call(node, P_PEERS, self._shared_peers())
            self._got_peers(resp)
        except RpcError as e:
            log.debug("peer exchange with %s failed: %s", node.hex()[:16], e)

    # ------------------------------------------------------------------ status

    def _got_status(self, node: bytes, body: Any) -> None:
        if not isinstance(body, dict):
            raise RpcError("a node status is a map")
        port, pub = body.get("rpcPort"), body.get("publicAddr")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise RpcError("a node status has rpcPort")
        if body.get("replicationFactor") != self.config.replication_factor:
            log.warning("node %s has replication factor %r, ours is %d: ignored",
                        node.hex()[:16], body.get("replicationFactor"),
                        self.config.replication_factor)
            raise RpcError("different replication factor")
        self.status[node] = {"hostname": _short_str(body.get("hostname")),
                             "garageVersion": _short_str(body.get("garageVersion")),
                             "dataPartition": _partition(body.get("dataPartition")),
                             "metadataPartition": _partition(body.get("metadataPartition"))}
        self.last_seen[node] = self.system.clock.now_msec()
        if isinstance(pub, str):
            try:
                host, p = split_host_port(pub)
            except ConfigError:
                raise RpcError("invalid publicAddr") from None
            self._learn(node, host, p, update=True)
        else:
            link = self.app.links.get(node)
            if link is not None and node not in self.peering.peers:
                host = link.remote.rpartition(":")[0].strip("[]")
                self._learn(node, host, port, update=False)
        digest = body.get("layoutDigest")
        if digest != list(self.system.layout.digest()) and node not in self._pulling:
            self._pulling.add(node)
            self._spawn(self._pull_layout(node))

    async def _h_status(self, req: IncomingRequest) -> Any:
        self._got_status(req.peer, req.body)
        return self.my_status()

    # ------------------------------------------------------------------ peer lists

    def _got_peers(self, body: Any) -> None:
        if not isinstance(body, list):
            raise RpcError("a peer list is a list")
        for entry in body[:10_000]:
            try:
                node, host, port = parse_peer(str(entry))
            except PeerAddrError:
                continue
            self._learn(node, host, port, update=False)

    async def _h_peers(self, req: IncomingRequest) -> Any:
        if req.peer not in self.peering.peers:
            raise RpcError("send your status first")
        self._got_peers(req.body)
        return self._shared_peers()

    # ------------------------------------------------------------------ layout gossip

    def _layout_changed(self) -> None:
        if self._push_task is None or self._push_task.done():
            self._push_task = asyncio.get_running_loop().create_task(self._push_layout())

    async def _push_layout(self) -> None:
        await asyncio.sleep(GOSSIP_DELAY)
        obj = self.system.layout.encode_obj()
        for n in self._up_peers():
            if n in self.status:
                self._spawn(self._push_to(n, obj))

    async def _push_to(self, node: bytes, obj: Any) -> None:
        try:
            await self._call(node, P_LAYOUT_PUSH, obj)
        except RpcError as e:
            log.debug("layout push to %s failed: %s", node.hex()[:16], e)

    async def _pull_layout(self, node: bytes) -> None:
        try:
            obj = await self._call(node, P_LAYOUT_PULL, None)
            await self._merge_layout(node, obj)
        except RpcError as e:
            log.info("cannot pull the layout from %s: %s", node.hex()[:16], e)
        finally:
            self._pulling.discard(node)

    async def _merge_layout(self, node: bytes, obj: Any) -> None:
        try:
            other = LayoutHistory.decode_obj(obj)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError,
                LayoutError) as e:
            raise RpcError(f"invalid layout history: {e}") from None
        async with self.system.layout_lock:
            before = self.system.layout.current.version
            try:
                self.system.layout.check_received(other)
                # Merged into a copy, swapped in whole: a failing merge leaves ours intact.
                merged = self.system.layout.copy()
                changed = merged.merge(other)
                if changed:
                    self.system.layout = merged
            except LayoutError as e:
                log.warning("layout from node %s refused: %s", node.hex()[:16], e)
                raise RpcError(f"layout refused: {e}") from None
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                # Decodable but inconsistent (a version's fields do not fit together).
                log.warning("malformed layout from node %s: %s", node.hex()[:16], e)
                raise RpcError(f"invalid layout history: {e}") from None
            if changed:
                # A new version is worth a line; tracker and staging updates are routine.
                level = logging.INFO if self.system.layout.current.version != before \
                    else logging.DEBUG
                log.log(level, "layout from node %s merged: now version %d",
                        node.hex()[:16], self.system.layout.current.version)
                self.system.save_layout()

    async def _h_layout_pull(self, req: IncomingRequest) -> Any:
        if req.peer not in self.peering.peers:
            raise RpcError("send your status first")
        return self.system.layout.encode_obj()

    async def _h_layout_push(self, req: IncomingRequest) -> Any:
        if req.peer not in self.peering.peers:
            raise RpcError("send your status first")
        await self._merge_layout(req.peer, req.body)
        return None

    async def call_admin(self, node: bytes, endpoint: str, query: dict[str, str],
                         body: Any) -> Any:
        """An admin API call answered by another node (multi-node endpoints)."""
        if not self.is_up(node):
            raise RpcError("node is not connected")
        return await self._call(node, "admin", {"endpoint": endpoint, "query": query,
                                                "body": body})

    # ------------------------------------------------------------------ node connect

    async def connect(self, addr: str) -> None:
        """`garage node connect <id>@<host>:<port>`: raises RpcError/PeerAddrError with a
        message for a person."""
        node, host, port = parse_peer(addr)
        if node == self.app.id:
            raise PeerAddrError("this is the node's own identifier")
        known = node in self.peering.peers
        if not known:
            # Known first, so the new link is greeted (_on_link) as a node's.
            self.peering.add_peer(node, host, port)
        try:
            await self.app.connect(host, port, expected=node, timeout_s=CONNECT_TIMEOUT)
        except RpcError:
            if not known:
                self.peering.peers.pop(node, None)
            raise
        self._learn(node, host, port, update=True)
        self._peers_changed = True
