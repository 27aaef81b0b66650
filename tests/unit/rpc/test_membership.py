"""Membership: peer address syntax and config checks, the persisted peer list, and two
in-process nodes on loopback exchanging status, peers and layouts (strangers and garbage
are refused without harm)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from pygarage.net.netapp import NetApp
from pygarage.net.peer import RpcError
from pygarage.net.server import RpcServer
from pygarage.rpc.layout.version import NodeRole
from pygarage.rpc.membership import P_LAYOUT_PUSH, P_PEERS, P_STATUS, Membership
from pygarage.rpc.peer_list import load_peer_list, save_peer_list
from pygarage.rpc.system import System
from pygarage.testing.node import free_port
from pygarage.testing.waits import until
from pygarage.util.config import Config, ConfigError, config_from_dict
from pygarage.util.peer_addr import PeerAddrError, own_public_addr, parse_peer

ID = "ab" * 32
SECRET = "11" * 32
BASE = {"metadata_dir": "/m", "data_dir": "/d", "rpc_bind_addr": "[::]:3901",
        "rpc_secret": SECRET, "replication_factor": 1}


def test_parse_peer() -> None:
    assert parse_peer(f"{ID}@10.0.0.2:3901") == (bytes.fromhex(ID), "10.0.0.2", 3901)
    assert parse_peer(f"{ID}@[fc00::1]:3901") == (bytes.fromhex(ID), "fc00::1", 3901)
    assert parse_peer(f"{ID}@node2.example:3901")[1] == "node2.example"
    assert parse_peer(f"{ID.upper()}@10.0.0.2:3901")[0] == bytes.fromhex(ID)  # as Garage reads it
    for bad in ("10.0.0.2:3901", f"{ID[:-2]}@1.2.3.4:1", f"{ID}@1.2.3.4", f"{ID}@:3901",
                f"{ID}@1.2.3.4:0", f"{ID}@1.2.3.4:70000", f"{'zz' * 32}@1.2.3.4:1",
                # bytes.fromhex skips whitespace: a newline or blank inside the id, or
                # another script's digit, must not pass as 64 hex digits.
                f"{ID[:-1]}\n@1.2.3.4:1", f"{ID[:-1]} @1.2.3.4:1", f"{ID[:-1]}\u0663@1.2.3.4:1"):
        with pytest.raises(PeerAddrError):
            parse_peer(bad)


def test_bootstrap_peers_and_unsupported_discovery_in_config() -> None:
    c = config_from_dict(dict(BASE, bootstrap_peers=[f"{ID}@10.0.0.2:3901"]))
    assert c.bootstrap_peers == (f"{ID}@10.0.0.2:3901",)
    for bad in (["10.0.0.2:3901"], "x", [1]):
        with pytest.raises(ConfigError, match="bootstrap_peers"):
            config_from_dict(dict(BASE, bootstrap_peers=bad))
    for key in ("consul_discovery", "kubernetes_discovery", "rpc_public_addr_subnet"):
        with pytest.raises(ConfigError, match="not supported"):
            config_from_dict(dict(BASE, **{key: {}}))


def test_own_public_addr() -> None:
    assert own_public_addr("192.0.2.7:3901", "[::]:3901") == "192.0.2.7:3901"
    assert own_public_addr(None, "127.0.0.1:3901") == "127.0.0.1:3901"
    assert own_public_addr(None, "[::1]:3901") == "[::1]:3901"
    auto = own_public_addr(None, "[::]:3901")  # the default-route IP, when there is one
    assert auto is None or auto.endswith(":3901")


def test_peer_list_roundtrip_and_bad_file(tmp_path: Path) -> None:
    peers = {bytes.fromhex(ID): ("10.0.0.2", 3901), bytes(32): ("::1", 3902)}
    save_peer_list(tmp_path, peers)
    assert load_peer_list(tmp_path) == peers
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "peer_list").write_text('["garbage", 3')
    assert load_peer_list(tmp_path) == {}
    (tmp_path / "peer_list").write_text(f'["garbage", "{ID}@1.2.3.4:5"]')
    assert load_peer_list(tmp_path) == {bytes.fromhex(ID): ("1.2.3.4", 5)}


class Node:
    def __init__(self, root: Path, bootstrap: list[str] | None = None):
        self.port = free_port()
        self.config: Config = config_from_dict(dict(
            BASE, metadata_dir=str(root / "meta"), data_dir=str(root / "data"),
            rpc_bind_addr=f"127.0.0.1:{self.port}", bootstrap_peers=bootstrap or []))
        (root / "data").mkdir(parents=True)
        self.system = System(self.config)
        self.rpc = RpcServer(self.config.rpc_secret, self.system.node_key)
        self.m = Membership(self.system, self.rpc, self.config, tick=0.05)

    @property
    def addr(self) -> str:
        return f"{self.system.node_id}@127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.rpc.start("127.0.0.1", self.port)
        self.m.start()

    async def stop(self) -> None:
        await self.m.stop()
        await self.rpc.close()

    def up(self) -> set[str]:
        return {n["id"] for n in self.system.known_nodes() if n["isUp"]}


def test_two_nodes_gossip_peers_and_layout(tmp_path: Path) -> None:
    async def main() -> None:
        a = Node(tmp_path / "a")
        await a.start()
        b = Node(tmp_path / "b", [a.addr])
        await b.start()
        c = Node(tmp_path / "c")
        # c gives no public address: b reaches it at the IP its link comes from, with the
        # RPC port from its status (Garage's autodiscovery), and gossips that to a.
        c.m.public_addr = None
        await c.start()
        try:
            await until(lambda: a.up() == b.up() == {a.system.node_id, b.system.node_id})
            # c is introduced to b only (node connect); it learns a through gossip.
            await c.m.connect(b.addr)
            ids = {x.system.node_id for x in (a, b, c)}
            await until(lambda: a.up() == b.up() == c.up() == ids)
            assert load_peer_list(c.config.metadata_dir).keys() == {
                bytes.fromhex(a.system.node_id), bytes.fromhex(b.system.node_id)}
            # A layout change on c reaches a and b by gossip.
            c.system.layout.stage_role(a.system.node_id, NodeRole("z1", 10**9, ()),
                                       c.system.clock)
            c.system.save_layout()
            await until(lambda: a.system.layout.has_staged() and b.system.layout.has_staged())
            status = {n["id"]: n for n in a.system.known_nodes()}
            assert status[c.system.node_id]["hostname"] == c.system.hostname
            assert status[c.system.node_id]["addr"] == f"127.0.0.1:{c.port}"

            # A stranger with the secret but no status is refused; garbage is refused.
            stranger = NetApp(bytes.fromhex(SECRET), SigningKey.generate())
            link = await stranger.connect("127.0.0.1", a.port)
            for path in (P_PEERS, P_LAYOUT_PUSH):
                with pytest.raises(RpcError, match="status first"):
                    await link.call(path, [], timeout_s=5)
            for bad in (None, {"rpcPort": "x"}, {"rpcPort": 1, "replicationFactor": 3}):
                with pytest.raises(RpcError):
                    await link.call(P_STATUS, bad, timeout_s=5)
            await stranger.close()
            with pytest.raises(RpcError, match="invalid layout"):
                await b.rpc.app.call(bytes.fromhex(a.system.node_id), P_LAYOUT_PUSH,
                                     {"versions": "nope"}, timeout_s=5)
            assert a.up() == ids  # still a healthy cluster
            # A node that goes away is down, with a last-seen time.
            await c.stop()
            await until(lambda: c.system.node_id not in a.up())
            gone = {n["id"]: n for n in a.system.known_nodes()}[c.system.node_id]
            assert gone["isUp"] is False and gone["lastSeenSecsAgo"] is not None
        finally:
            for x in (a, b, c):
                await x.stop()

    asyncio.run(main())
