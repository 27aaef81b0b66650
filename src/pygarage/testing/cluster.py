"""Several real `garage server` processes on loopback forming one cluster (shared
rpc_secret, bootstrap_peers), for tests and scripts/dev-cluster. Never imported by
production code."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .node import GarageNode

# Small so tests notice a dead peer quickly (the ping timeout also bounds a hung link).
TEST_RPC_EXTRA = "rpc_ping_timeout_msec = 2000\nrpc_timeout_msec = 10000\n"


def node_id(node: GarageNode) -> str:
    """The node's id (its public key, written at its first start)."""
    return (node.root / "meta" / "node_key.pub").read_bytes().hex()


def peer_addr(node: GarageNode) -> str:
    return f"{node_id(node)}@127.0.0.1:{node.rpc_port}"


class Cluster:
    def __init__(self, root: Path, *, replication_factor: int = 1, extra: str = TEST_RPC_EXTRA):
        self.root = root
        self.secret = secrets.token_hex(32)
        self.rf = replication_factor
        self.extra = extra
        self.nodes: list[GarageNode] = []

    def add(self, bootstrap: list[GarageNode] | None = None, *, secret: str | None = None,
            start: bool = True, extra: str = "") -> GarageNode:
        """A new node whose bootstrap_peers name `bootstrap` (already started once)."""
        peers = json.dumps([peer_addr(b) for b in bootstrap or []])
        conf = f"bootstrap_peers = {peers}\n{self.extra}{extra}"
        node = GarageNode(self.root / f"node{len(self.nodes) + 1}",
                          rpc_secret=secret or self.secret, extra=conf, root_domain=None)
        if self.rf != 1:
            text = node.config_path.read_text().replace(
                "replication_factor = 1", f"replication_factor = {self.rf}")
            node.config_path.write_text(text)
        self.nodes.append(node)
        if start:
            node.start(single_node=False)
        return node

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    @staticmethod
    def wait_for(cond: Callable[[], Any], timeout: float = 10.0, step: float = 0.1) -> float:
        """Seconds until cond() is truthy; AssertionError after `timeout`."""
        t0 = time.monotonic()
        while True:
            try:
                if cond():
                    return time.monotonic() - t0
            except OSError:
                pass  # a node restarting
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(step)

    @staticmethod
    def up_ids(node: GarageNode) -> set[str]:
        st = node.admin("GetClusterStatus")
        return {n["id"] for n in st["nodes"] if n["isUp"]}
