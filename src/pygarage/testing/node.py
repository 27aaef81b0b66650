"""A real `garage server` process for tests and benchmarks: its own dirs, free loopback
ports, a generated config. Never imported by production code."""

from __future__ import annotations

import collections
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

_rng = random.Random()  # its own: a test seeding `random` must not make two runs collide
# Ports handed out recently, per host: a node's four ports are picked before any is bound,
# so a pick must not repeat one still waiting for its listener.
_ISSUED_KEEP = 4096
_issued: dict[str, collections.deque[int]] = {}


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, for a listener started later. Picked below the kernel's ephemeral
    range: the source port of some outgoing connection made meanwhile (nodes dial each
    other from their own IPs) can then never take it first."""
    lo = _ephemeral_range()[0]
    issued = _issued.setdefault(host, collections.deque(maxlen=_ISSUED_KEEP))
    for _ in range(200):
        port = _rng.randrange(10_000, lo) if lo > 11_000 else 0
        if port in issued:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            got = int(s.getsockname()[1])
        if got not in issued:
            issued.append(got)
            return got
    raise RuntimeError(f"no free port on {host}")


def admin_request(host: str, port: int, token: str, endpoint: str,
                  query: dict[str, str] | None = None, body: Any = None) -> Any:
    """One admin API v2 call (POST with a JSON body, else GET): the decoded JSON answer;
    urllib's HTTPError for an error status."""
    url = f"http://{host}:{port}/v2/{endpoint}"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


class GarageNode:
    def __init__(self, root: Path, *, db_engine: str = "lmdb", extra: str = "",
                 root_domain: str | None = ".s3.garage.localhost", block_size: str | None = None,
                 rpc_secret: str | None = None, host: str = "127.0.0.1"):
        self.root = root
        # Every listener on `host`: cluster tests give each node its own loopback IP.
        self.host = host
        root.mkdir(parents=True, exist_ok=True)
        self.s3_port, self.rpc_port = free_port(host), free_port(host)
        self.admin_port, self.web_port = free_port(host), free_port(host)
        self.admin_token = secrets.token_hex(16)
        self.config_path = root / "garage.toml"
        rd = f'root_domain = "{root_domain}"' if root_domain else ""
        bs = f'block_size = "{block_size}"' if block_size else ""
        # The website endpoint, unless the caller configures its own.
        self._own_web = "[s3_web]" not in extra
        web = "" if not self._own_web else (
            f'[s3_web]\nbind_addr = "{host}:{self.web_port}"\n'
            'root_domain = ".web.garage.localhost"\n')
        self.config_path.write_text(f"""
metadata_dir = "{root / 'meta'}"
data_dir = "{root / 'data'}"
db_engine = "{db_engine}"
replication_factor = 1
rpc_bind_addr = "{host}:{self.rpc_port}"
rpc_secret = "{rpc_secret or secrets.token_hex(32)}"
{bs}
{extra}

[s3_api]
s3_region = "garage"
api_bind_addr = "{host}:{self.s3_port}"
{rd}

{web}
[admin]
api_bind_addr = "{host}:{self.admin_port}"
admin_token = "{self.admin_token}"
""")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "server.log"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def web_endpoint(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    def start(self, *args: str, single_node: bool = True,
              env: dict[str, str] | None = None) -> None:
        log = open(self.log_path, "ab")
        # The caller's env wins, GARAGE_LOG included.
        env = {**os.environ, "GARAGE_LOG": os.environ.get("GARAGE_LOG", "info"), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pygarage", "-c", str(self.config_path), "server",
             *(["--single-node"] if single_node else []), *args],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"garage server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with socket.create_connection((self.host, self.admin_port), timeout=0.2):
                    pass
                with socket.create_connection((self.host, self.s3_port), timeout=0.2):
                    pass
                if self._own_web:  # the web endpoint starts last
                    with socket.create_connection((self.host, self.web_port), timeout=0.2):
                        pass
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("garage server did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """kill -9: no chance to flush or clean up."""
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "pygarage", "-c", str(self.config_path),
                            *args], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"garage {' '.join(args)} failed: {r.stderr}{r.stdout}")
        return r

    def admin(self, endpoint: str, query: dict[str, str] | None = None,
              body: Any = None) -> Any:
        return admin_request(self.host, self.admin_port, self.admin_token, endpoint, query, body)

    def create_key(self, name: str = "test-key", create_bucket: bool = True) -> tuple[str, str]:
        k = self.admin("CreateKey", body={"name": name,
                                          "allow": {"createBucket": create_bucket}})
        return k["accessKeyId"], k["secretAccessKey"]

    def create_bucket(self, name: str, key_id: str) -> None:
        b = self.admin("CreateBucket", body={"globalAlias": name})
        self.admin("AllowBucketKey", body={"bucketId": b["id"], "accessKeyId": key_id,
                                           "permissions": {"read": True, "write": True,
                                                           "owner": True}})

    def s3(self, key_id: str, secret: str, addressing: str = "path", **cfg: Any) -> Any:
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="garage", aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": addressing},
                          retries={"max_attempts": 1}, **cfg))
