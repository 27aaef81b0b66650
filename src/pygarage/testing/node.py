"""A real `garage server` process for tests and benchmarks: its own dirs, free loopback
ports, a generated config. Never imported by production code."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GarageNode:
    def __init__(self, root: Path, *, db_engine: str = "lmdb", extra: str = "",
                 root_domain: str | None = ".s3.garage.localhost", block_size: str | None = None,
                 rpc_secret: str | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.s3_port, self.rpc_port, self.admin_port = free_port(), free_port(), free_port()
        self.web_port = free_port()
        self.admin_token = secrets.token_hex(16)
        self.config_path = root / "garage.toml"
        rd = f'root_domain = "{root_domain}"' if root_domain else ""
        bs = f'block_size = "{block_size}"' if block_size else ""
        # The website endpoint, unless the caller configures its own.
        web = "" if "[s3_web]" in extra else (
            f'[s3_web]\nbind_addr = "127.0.0.1:{self.web_port}"\n'
            'root_domain = ".web.garage.localhost"\n')
        self.config_path.write_text(f"""
metadata_dir = "{root / 'meta'}"
data_dir = "{root / 'data'}"
db_engine = "{db_engine}"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{self.rpc_port}"
rpc_secret = "{rpc_secret or secrets.token_hex(32)}"
{bs}
{extra}

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{self.s3_port}"
{rd}

{web}
[admin]
api_bind_addr = "127.0.0.1:{self.admin_port}"
admin_token = "{self.admin_token}"
""")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "server.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def web_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, *args: str, single_node: bool = True) -> None:
        log = open(self.log_path, "ab")
        env = dict(os.environ, GARAGE_LOG=os.environ.get("GARAGE_LOG", "info"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pygarage", "-c", str(self.config_path), "server",
             *(["--single-node"] if single_node else []), *args],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"garage server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.admin_port), timeout=0.2):
                    pass
                with socket.create_connection(("127.0.0.1", self.s3_port), timeout=0.2):
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
        url = f"http://127.0.0.1:{self.admin_port}/v2/{endpoint}"
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Authorization": f"Bearer {self.admin_token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

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
