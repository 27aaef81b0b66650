"""scripts/dev-cluster: N `garage server` processes on loopback, one zone each, connected
with `garage node connect`, a layout applied, an access key and a bucket. Runs in the
foreground until Ctrl-C; state under GARAGE_DEV_DIR (default ./.garage-dev-cluster) is
kept, so a second run restarts the same cluster.

Every node gets its role in the first layout, then the key and bucket are created: tables
and blocks replicate, so any node serves S3."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .node import admin_request

BUCKET = os.environ.get("GARAGE_DEV_BUCKET", "default")
PORT_BASE = int(os.environ.get("GARAGE_DEV_PORT_BASE", "3900"))


def ports(i: int) -> dict[str, int]:
    base = PORT_BASE + 10 * i
    return {"s3": base, "rpc": base + 1, "web": base + 2, "admin": base + 3}


def write_config(d: Path, i: int, secret: str, token: str) -> Path:
    p = ports(i)
    conf = d / "garage.toml"
    if not conf.exists():
        d.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"""metadata_dir = "{d / 'meta'}"
data_dir = "{d / 'data'}"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{p['rpc']}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{p['s3']}"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:{p['web']}"
root_domain = ".web.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{p['admin']}"
admin_token = "{token}"
""")
        conf.chmod(0o600)
    return conf


def admin(i: int, token: str, endpoint: str, body: Any = None, **query: str) -> Any:
    return admin_request("127.0.0.1", ports(i)["admin"], token, endpoint, query, body)


def wait_layout(n: int, token: str) -> None:
    """Until every node has the applied layout (writes to the full-copy tables need it)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(admin(i, token, "GetClusterLayout")["version"] >= 1 for i in range(1, n + 1)):
            return
        time.sleep(0.2)
    sys.exit("the layout did not reach every node within 30 s")


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"a node exited; see {log}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"a node did not start within 60 s; see {log}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if not 1 <= n <= 20:
        sys.exit("usage: scripts/dev-cluster [N]  (1 <= N <= 20)")
    root = Path(os.environ.get("GARAGE_DEV_DIR") or ".garage-dev-cluster").resolve()
    root.mkdir(parents=True, exist_ok=True)
    secrets_file = root / "secrets.json"
    if secrets_file.exists():
        s = json.loads(secrets_file.read_text())
    else:
        s = {"rpc_secret": secrets.token_hex(32), "admin_token": secrets.token_hex(32)}
        secrets_file.write_text(json.dumps(s))
        secrets_file.chmod(0o600)
    token = s["admin_token"]
    procs: list[subprocess.Popen[bytes]] = []

    def stop(*_: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    confs = [write_config(root / f"node{i}", i, s["rpc_secret"], token) for i in range(1, n + 1)]
    for conf in confs:
        log = conf.parent / "server.log"
        procs.append(subprocess.Popen([sys.executable, "-m", "pygarage", "-c", str(conf),
                                       "server"], stdout=open(log, "ab"),
                                      stderr=subprocess.STDOUT))
    for i, conf in enumerate(confs, 1):
        wait_port(ports(i)["admin"], procs[i - 1], conf.parent / "server.log")
    ids = [(root / f"node{i}" / "meta" / "node_key.pub").read_bytes().hex()
           for i in range(1, n + 1)]
    for i in range(2, n + 1):  # what an operator types: garage node connect <id>@<addr>
        res = admin(i, token, "ConnectClusterNodes", [f"{ids[0]}@127.0.0.1:{ports(1)['rpc']}"])
        if not res[0]["success"]:
            sys.exit(f"node {i} could not connect to node 1: {res[0]['error']}")

    cred_file = root / "credentials.json"
    if admin(1, token, "GetClusterLayout")["version"] == 0:
        admin(1, token, "UpdateClusterLayout", {"roles": [
            {"id": ids[i], "zone": f"dc{i + 1}", "capacity": 10**9, "tags": [f"node{i + 1}"]}
            for i in range(n)]})
        admin(1, token, "ApplyClusterLayout", {"version": 1})
        wait_layout(n, token)
        key = admin(1, token, "CreateKey", {"name": "dev-key", "allow": {"createBucket": True}})
        b = admin(1, token, "CreateBucket", {"globalAlias": BUCKET})
        admin(1, token, "AllowBucketKey", {"bucketId": b["id"], "accessKeyId": key["accessKeyId"],
                                           "permissions": {"read": True, "write": True,
                                                           "owner": True}})
        cred_file.write_text(json.dumps({"key_id": key["accessKeyId"],
                                         "secret": key["secretAccessKey"]}))
        cred_file.chmod(0o600)
    cred = json.loads(cred_file.read_text())
    garage = f"garage -c {confs[0]}"
    status = subprocess.run([sys.executable, "-m", "pygarage", "-c", str(confs[0]), "status"],
                            capture_output=True, text=True).stdout
    lines = [f"\n==== pygarage dev cluster: {n} node(s) in {n} zone(s), state in {root} ====",
             status, "", "Node  S3 endpoint             Web endpoint            Admin API"
             "               RPC"]
    for i in range(1, n + 1):
        pt = ports(i)
        lines.append(f"{i:<5} http://127.0.0.1:{pt['s3']:<6}  http://127.0.0.1:{pt['web']:<6}  "
                     f"http://127.0.0.1:{pt['admin']:<6}  {ids[i - 1]}@127.0.0.1:{pt['rpc']}")
    lines += ["", f"Access key:  {cred['key_id']}", f"Secret key:  {cred['secret']}",
              f"Bucket:      {BUCKET}", f"Admin token: {token}", "",
              f"CLI:  {garage} status | layout show | layout history",
              f"S3:   AWS_ACCESS_KEY_ID={cred['key_id']} AWS_SECRET_ACCESS_KEY=... "
              f"aws --endpoint-url http://127.0.0.1:{ports(1)['s3']} --region garage "
              f"s3 ls s3://{BUCKET}",
              "",
              "Tables replicate: every node knows the key and the bucket and serves S3. Until",
              "blocks replicate too, an object of 3 KiB or more whose block another node owns",
              "answers 503 (quorum error); smaller objects are stored in the tables.",
              "Ctrl-C stops every node."]
    print("\n".join(lines), flush=True)
    while True:
        for i, proc in enumerate(procs, 1):
            if proc.poll() is not None:
                print(f"node {i} exited (code {proc.returncode}); stopping", flush=True)
                stop()
        time.sleep(1)


if __name__ == "__main__":
    main()
