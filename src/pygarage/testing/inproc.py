"""Several Garage nodes in one process and one event loop, each with its own directories,
RPC listener on loopback and membership, sharing one applied layout: for tests of the
cluster layers (tables, blocks, sync) below the S3 API, where starting processes and going
through HTTP would only add noise. The RPC between them is the real one (sockets,
handshake, encryption). Never imported by production code.

    async with InprocCluster(tmp_path, n=3, rf=3) as c:
        g1, g2, g3 = c.garages
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from types import TracebackType
from typing import Any

from ..model.garage import Garage
from ..net.server import RpcServer
from ..rpc.layout.version import NodeRole
from ..rpc.membership import Membership
from ..util.config import Config, config_from_dict
from .node import free_port


def node_config(root: Path, secret: str, rf: int, port: int, peers: list[str],
                **extra: Any) -> Config:
    raw: dict[str, Any] = {
        "metadata_dir": str(root / "meta"), "data_dir": str(root / "data"),
        "db_engine": "lmdb", "replication_factor": rf, "rpc_secret": secret,
        "rpc_bind_addr": f"127.0.0.1:{port}", "rpc_public_addr": f"127.0.0.1:{port}",
        "bootstrap_peers": peers, "rpc_ping_timeout_msec": 2000, "rpc_timeout_msec": 10000,
    }
    raw.update(extra)
    return config_from_dict(raw)


class InprocNode:
    def __init__(self, garage: Garage, rpc: RpcServer, membership: Membership, port: int):
        self.garage = garage
        self.rpc = rpc
        self.membership = membership
        self.port = port
        self.running = True

    @property
    def id(self) -> str:
        return self.garage.system.node_id

    async def stop(self) -> None:
        """Stop the node as a clean shutdown would (its directories stay)."""
        if not self.running:
            return
        self.running = False
        await self.membership.stop()
        await self.rpc.close()
        await self.garage.shutdown()


class InprocCluster:
    """n nodes, node i in zone f"z{i % zones}", every one with `capacity` (None for the
    nodes listed in `gateways`), layout version 1 applied on all before use."""

    def __init__(self, root: Path, n: int = 3, rf: int = 3, zones: int | None = None,
                 capacity: int = 1 << 30, gateways: tuple[int, ...] = (),
                 workers: bool = True, **config_extra: Any):
        self.root = root
        self.n = n
        self.rf = rf
        self.zones = zones or n
        self.capacity = capacity
        self.gateways = gateways
        self.workers = workers
        self.config_extra = config_extra
        self.secret = secrets.token_hex(32)
        self.nodes: list[InprocNode] = []
        self.ports = [free_port() for _ in range(n)]

    @property
    def garages(self) -> list[Garage]:
        return [nd.garage for nd in self.nodes]

    async def _start_node(self, i: int, peers: list[str]) -> InprocNode:
        config = node_config(self.root / f"node{i + 1}", self.secret, self.rf, self.ports[i],
                             peers, **self.config_extra)
        g = Garage(config)
        if self.workers:
            g.spawn_workers()
        rpc = RpcServer(config.rpc_secret, g.system.node_key,
                        rpc_timeout_msec=config.rpc_timeout_msec,
                        rpc_ping_timeout_msec=config.rpc_ping_timeout_msec)
        g.rpc.attach(rpc)
        await rpc.start("127.0.0.1", self.ports[i])
        m = Membership(g.system, rpc, config, status_interval=1.0, tick=0.2)
        m.start()
        return InprocNode(g, rpc, m, self.ports[i])

    async def start(self) -> InprocCluster:
        first = await self._start_node(0, [])
        self.nodes.append(first)
        boot = [f"{first.id}@127.0.0.1:{first.port}"]
        for i in range(1, self.n):
            self.nodes.append(await self._start_node(i, boot))
        await self.wait_connected()
        self.apply_layout()
        return self

    async def wait_connected(self, within_s: float = 15.0) -> None:
        """Until every running node has a link to every other running node."""
        async with asyncio.timeout(within_s):
            while True:
                live = [nd for nd in self.nodes if nd.running]
                if all(o is nd or nd.garage.rpc.is_up(o.id) for nd in live for o in live):
                    return
                await asyncio.sleep(0.05)

    def apply_layout(self) -> None:
        """Stage every node's role on node 1, apply the next version, and give the same
        history to every node (as gossip would, without waiting for it)."""
        s1 = self.nodes[0].garage.system
        h = s1.layout
        for i, nd in enumerate(self.nodes):
            cap = None if i in self.gateways else self.capacity
            h.stage_role(nd.id, NodeRole(f"z{i % self.zones}", cap), s1.clock)
        h.apply(h.current.version + 1, s1.clock)
        s1.save_layout()
        for nd in self.nodes[1:]:
            sys_ = nd.garage.system
            sys_.layout.merge(h.copy())
            sys_.save_layout()

    async def restart(self, i: int) -> InprocNode:
        """Start node i again on its directories and port (after stop())."""
        assert not self.nodes[i].running
        boot = [f"{nd.id}@127.0.0.1:{nd.port}" for j, nd in enumerate(self.nodes)
                if j != i and nd.running]
        self.nodes[i] = await self._start_node(i, boot)
        await self.wait_connected()
        return self.nodes[i]

    async def stop(self) -> None:
        for nd in self.nodes:
            await nd.stop()

    async def __aenter__(self) -> InprocCluster:
        return await self.start()

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
