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

    def start_connected(self, n: int) -> set[str]:
        """n new nodes, every one bootstrapped on the first of them: their ids, once the
        first sees them all up (within wait_for's 10 s). No layout."""
        first = self.add()
        nodes = [first] + [self.add([first]) for _ in range(n - 1)]
        ids = {node_id(nd) for nd in nodes}
        self.wait_for(lambda: self.up_ids(first) == ids)
        return ids

    def start_zoned(self, storage: int, gateways: int = 0, capacity: int = 10**9) -> None:
        """`storage` nodes in zones dc1..dcN and `gateways` gateway nodes (zone dc1, tag
        gw), every one bootstrapped on the first, layout version 1 applied and seen by all."""
        first = self.add()
        for _ in range(storage + gateways - 1):
            self.add([first])
        ids = [node_id(n) for n in self.nodes]
        self.wait_for(lambda: all(Cluster.up_ids(n) >= set(ids) for n in self.nodes),
                      timeout=20)
        roles: list[dict[str, Any]] = [
            {"id": ids[i], "zone": f"dc{i + 1}", "capacity": capacity, "tags": []}
            for i in range(storage)]
        roles += [{"id": ids[i], "zone": "dc1", "capacity": None, "tags": ["gw"]}
                  for i in range(storage, storage + gateways)]
        first.admin("UpdateClusterLayout", body={"roles": roles})
        first.admin("ApplyClusterLayout", body={"version": 1})
        self.wait_for(lambda: all(n.admin("GetClusterLayout")["version"] == 1
                                  for n in self.nodes), timeout=20)

    @staticmethod
    def wait_for(cond: Callable[[], Any], timeout: float = 30.0, step: float = 0.1) -> float:
        """Seconds until cond() is truthy; AssertionError after `timeout`. The default is
        generous (a loaded 2-core CI machine); a test claiming a delay passes its own."""
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


# ---------------------------------------------------------------------- fault tests

def zones_for(n: int, zones: int) -> list[str]:
    """n nodes spread over `zones` zones as evenly as possible: dc1, dc1, dc2, dc2, dc3."""
    per, extra = divmod(n, zones)
    out: list[str] = []
    for z in range(zones):
        out += [f"dc{z + 1}"] * (per + (1 if z < extra else 0))
    return out


class FaultCluster:
    """N nodes in zones, each on its own loopback IP (127.0.<net>.11, .12, ...) behind a
    FaultProxy listener in front of its RPC port: nodes dial each other only through the
    proxies (rpc_public_addr, node connect) and from their own IP (rpc_bind_outgoing), so
    tests can cut, black-hole or delay any link. Nodes are named n1..nN (proxy names)."""

    def __init__(self, root: Path, n: int, *, zones: int | None = None,
                 replication_factor: int = 3, block_size: str = "64K", extra: str = "",
                 net: int | None = None, seed: int = 0):
        from .proxy import ProxyThread

        self.root = root
        self.secret = secrets.token_hex(32)
        self.rf = replication_factor
        self.block_size = block_size
        self.extra = TEST_RPC_EXTRA + extra
        # Its own 127.0.<net>.0/24, so no two clusters (or a leftover process) share an IP.
        self.net = net if net is not None else secrets.randbelow(250) + 1
        self.nodes: list[GarageNode] = []
        self.names: list[str] = []
        self.zones: list[str] = zones_for(n, zones or n)
        self.proxy = ProxyThread(seed)
        self.proxy_addr: dict[str, tuple[str, int]] = {}
        self.clock_offset: dict[str, float] = {}
        self.key: tuple[str, str] | None = None
        self.bucket: str | None = None
        try:
            for _ in range(n):
                self._new_node()
        except BaseException:
            self.stop()
            raise

    # ------------------------------------------------------------------ nodes

    def ip(self, i: int) -> str:
        return f"127.0.{self.net}.{11 + i}"

    def _new_node(self) -> GarageNode:
        i = len(self.nodes)
        name, ip = f"n{i + 1}", self.ip(i)
        # The proxy listens first: the ports the node then picks on the same IP cannot be
        # the one the kernel gave the proxy (picked, released, then bound at start).
        paddr = self.proxy.add_node(name, ip, (ip, 0))
        node = GarageNode(self.root / name, rpc_secret=self.secret, extra=self.extra,
                          root_domain=None, block_size=self.block_size, host=ip)
        self.proxy.set_upstream(name, (ip, node.rpc_port))
        text = node.config_path.read_text().replace(
            "replication_factor = 1", f"replication_factor = {self.rf}")
        bind = f'rpc_bind_addr = "{ip}:{node.rpc_port}"'
        text = text.replace(bind, f'{bind}\nrpc_public_addr = "{paddr[0]}:{paddr[1]}"\n'
                                  "rpc_bind_outgoing = true")
        node.config_path.write_text(text)
        self.nodes.append(node)
        self.names.append(name)
        self.proxy_addr[name] = paddr
        return node

    def node_id(self, i: int) -> str:
        return node_id(self.nodes[i])

    def peer_addr(self, i: int) -> str:
        host, port = self.proxy_addr[self.names[i]]
        return f"{self.node_id(i)}@{host}:{port}"

    def start_node(self, i: int, clock_offset_s: float | None = None) -> None:
        """(Re)start node i; with a clock offset (PYGARAGE_TEST_CLOCK_OFFSET_SECS), or the
        one it was last given."""
        if clock_offset_s is not None:
            self.clock_offset[self.names[i]] = clock_offset_s
        off = self.clock_offset.get(self.names[i])
        env = {"PYGARAGE_TEST_CLOCK_OFFSET_SECS": str(off)} if off else None
        self.nodes[i].start(single_node=False, env=env)

    def kill(self, i: int) -> None:
        """kill -9."""
        self.nodes[i].kill()

    def add_node(self, zone: str | None = None) -> int:
        """A new node, started and connected to node 1 (no role yet). Returns its index."""
        self._new_node()
        i = len(self.nodes) - 1
        self.zones.append(zone or f"dc{i + 1}")
        self.start_node(i)
        self._connect(i, 0)
        return i

    def _connect(self, i: int, to: int) -> None:
        res = self.nodes[i].admin("ConnectClusterNodes", body=[self.peer_addr(to)])
        if not res[0]["success"]:
            raise RuntimeError(f"node {i + 1} cannot connect to node {to + 1}: "
                               f"{res[0]['error']}")

    def start(self, layout: bool = True) -> None:
        """Start every node, connect them (through the proxies), wait until each sees all
        the others up, and apply a layout giving each its zone and 1 GB."""
        for i in range(len(self.nodes)):
            self.start_node(i)
        for i in range(1, len(self.nodes)):
            self._connect(i, 0)
        self.wait_connected()
        if layout:
            self.apply_layout(range(len(self.nodes)))

    def apply_layout(self, indexes: Any) -> int:
        n1 = self.nodes[0]
        roles = [{"id": self.node_id(i), "zone": self.zones[i], "capacity": 10**9,
                  "tags": [self.names[i]]} for i in indexes]
        n1.admin("UpdateClusterLayout", body={"roles": roles})
        version = int(n1.admin("GetClusterLayout")["version"]) + 1
        n1.admin("ApplyClusterLayout", body={"version": version})
        live = [n for n in self.nodes if n.proc is not None]
        Cluster.wait_for(lambda: all(int(n.admin("GetClusterLayout")["version"]) == version
                                     for n in live), timeout=15)
        return version

    def wait_connected(self, nodes: list[int] | None = None, timeout: float = 20) -> float:
        """Until each of `nodes` (default: all running) sees exactly those nodes up."""
        idx = nodes if nodes is not None else [i for i, n in enumerate(self.nodes)
                                               if n.proc is not None]
        want = {self.node_id(i) for i in idx}
        return Cluster.wait_for(lambda: all(Cluster.up_ids(self.nodes[i]) >= want
                                            for i in idx), timeout=timeout)

    # ------------------------------------------------------------------ network faults

    def partition(self, *groups: list[int], mode: str = "reset") -> None:
        self.proxy.partition(*[[self.names[i] for i in g] for g in groups], mode=mode)

    def cut(self, a: list[int], b: list[int], mode: str = "reset") -> None:
        self.proxy.cut([self.names[i] for i in a], [self.names[i] for i in b], mode)

    def heal(self) -> None:
        self.proxy.heal()

    def set_delay(self, mean_s: float, jitter_s: float = 0.0) -> None:
        """Between every two nodes of different zones, each direction."""
        for i, zi in enumerate(self.zones):
            for j, zj in enumerate(self.zones):
                if zi != zj:
                    self.proxy.set_delay([self.names[i]], [self.names[j]], mean_s, jitter_s)

    # ------------------------------------------------------------------ S3

    def create_key_and_bucket(self, bucket: str = "faults", via: int = 0) -> None:
        node = self.nodes[via]
        self.key = node.create_key("faults-key")
        node.create_bucket(bucket, self.key[0])
        self.bucket = bucket

    def s3(self, i: int, **cfg: Any) -> Any:
        assert self.key is not None, "create_key_and_bucket() first"
        cfg.setdefault("connect_timeout", 5)
        cfg.setdefault("read_timeout", 30)
        return self.nodes[i].s3(*self.key, **cfg)

    def status(self, i: int = 0) -> str:
        return str(self.nodes[i].cli("status").stdout)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
        self.proxy.close()


# The stubs that stand in for replication (table/table.py, block/manager.py) raise a
# QuorumError with this text for any remote node: its presence in a log is the one reason
# a fault scenario may be skipped.
REPLICATION_STUB = "cluster RPC not available"


def replication_missing(c: FaultCluster) -> str | None:
    """Probe: a key and bucket created through node 1, a 200 KB object (blocks) put through
    node 1 and read back through node 2. None if all of it works; the reason if it failed
    on the replication stubs; any other failure raises (a scenario must not skip it)."""
    import botocore.exceptions

    sizes = {i: n.log_path.stat().st_size if n.log_path.exists() else 0
             for i, n in enumerate(c.nodes)}

    def stub_seen() -> str | None:
        for i, n in enumerate(c.nodes):
            with open(n.log_path, "rb") as f:
                f.seek(sizes[i])
                for line in f.read().decode(errors="replace").splitlines():
                    if REPLICATION_STUB in line:
                        return f"node {i + 1}: {line.strip()[-200:]}"
        return None

    try:
        c.create_key_and_bucket("probe")
        body = secrets.token_bytes(200_000)
        c.s3(0).put_object(Bucket="probe", Key="probe", Body=body)
        if c.s3(1).get_object(Bucket="probe", Key="probe")["Body"].read() != body:
            raise AssertionError("probe object read through node 2 differs")
        return None
    except (OSError, botocore.exceptions.ClientError) as e:
        seen = stub_seen()
        if seen is None:
            raise
        return f"tables/blocks do not replicate yet (cluster part 2): {e!r:.120}; {seen}"
