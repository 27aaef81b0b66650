"""Front-end hardening, from outside, against real server processes: connection floods
(slow-loris), log injection, /check, stray temporary block files, a GET failing after its
headers, malformed admin API input, malformed RPC frames."""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from s3helpers import RawClient, read_http_response, read_until_close

from pygarage.cli.client import AdminClient
from pygarage.testing.node import GarageNode, free_port
from pygarage.util.ids import block_hash

HEADER_TIMEOUT = 1.5
MAX_CONNS = 40
BLOCK = 16 * 1024


@pytest.fixture(scope="module")
def fnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarageNode]:
    """Small connection cap and header deadline, small blocks, a website root domain."""
    n = GarageNode(tmp_path_factory.mktemp("front"), block_size="16KiB", extra=f"""
http_max_connections = {MAX_CONNS}
http_header_timeout_msec = {int(HEADER_TIMEOUT * 1000)}
[s3_web]
bind_addr = "127.0.0.1:{free_port()}"
root_domain = ".web.garage.localhost"
""")
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def fcreds(fnode: GarageNode) -> tuple[str, str]:
    key = fnode.create_key("front")
    fnode.create_bucket("front", key[0])
    return key


def _log_tail(node: GarageNode, start: int) -> str:
    return node.log_path.read_bytes()[start:].decode("utf-8", "replace")


# ------------------------------------------------------------------ connection floods

class SlowLoris:
    """Keeps `target` sockets open that send a request line, then one header byte every
    `every` seconds and never finish; sockets closed by the server are replaced."""

    def __init__(self, port: int, target: int, every: float = 0.3):
        self.port, self.target, self.every = port, target, every
        self.socks: list[socket.socket] = []
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            s.sendall(b"GET /front/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            s.setblocking(False)
            self.socks.append(s)
            self.opened += 1
        except OSError:
            pass  # refused or reset at once: the cap at work

    def pause(self) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def probe(s: socket.socket) -> bool:
        """Still open on the server side (no EOF or reset seen)?"""
        try:
            return s.recv(1024) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _alive(self, s: socket.socket) -> bool:
        """Trickle one more byte, if the server has not closed the connection."""
        if not self.probe(s):
            return False
        try:
            s.send(b"a")
            return True
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            keep = []
            for s in self.socks:
                if self._alive(s):
                    keep.append(s)
                else:
                    s.close()
            self.socks = keep
            # Replace a bounded number per tick: a flood, but one that leaves the GIL to
            # the signed client in this same process.
            for _ in range(min(25, self.target - len(self.socks))):
                self._open()
            self._stop.wait(self.every)

    def __enter__(self) -> SlowLoris:
        for _ in range(self.target):
            self._open()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._stop.is_set():
            self.pause()
        for s in self.socks:
            s.close()


def test_slowloris_flood_does_not_starve_signed_clients(fnode: GarageNode,
                                                         fcreds: tuple[str, str]) -> None:
    s3 = _s3(fnode, fcreds)
    s3.put_object(Bucket="front", Key="x", Body=b"hello")
    log_start = fnode.log_path.stat().st_size
    idle = [socket.create_connection(("127.0.0.1", fnode.s3_port)) for _ in range(30)]
    latencies = []
    with SlowLoris(fnode.s3_port, target=300) as attack:
        time.sleep(0.5)
        for i in range(10):
            t0 = time.monotonic()
            s3.put_object(Bucket="front", Key=f"during-{i}", Body=b"data %d" % i)
            assert s3.get_object(Bucket="front", Key=f"during-{i}")["Body"].read() == \
                b"data %d" % i
            latencies.append(time.monotonic() - t0)
            time.sleep(0.2)
        attack.pause()
        time.sleep(0.3)
        alive = sum(attack.probe(s) for s in attack.socks)
        opened = attack.opened
    print(f"flood: {opened} slow connections opened, {alive} alive at the end; signed "
          f"PUT+GET latencies {[round(x, 3) for x in latencies]}")
    # The flood really was far over the cap, and the server held it at the cap.
    assert opened >= 300 and alive <= MAX_CONNS, (opened, alive)
    assert max(latencies) < 3, latencies
    # Connections that never send anything are closed too (the first 30 were evicted).
    for s in idle:
        s.settimeout(HEADER_TIMEOUT + 3)
        try:
            assert s.recv(10) == b""
        except ConnectionResetError:
            pass
        s.close()
    text = _log_tail(fnode, log_start)
    assert "Traceback" not in text
    # A handful of summary lines, not one per connection.
    assert len(text.splitlines()) < 80, text[-3000:]
    assert "HTTP connection cap" in text


def test_header_deadline_is_total_not_per_byte(fnode: GarageNode) -> None:
    s = socket.create_connection(("127.0.0.1", fnode.s3_port))
    s.sendall(b"GET /front/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    t0 = time.monotonic()
    s.settimeout(0.2)
    closed_after = None
    while time.monotonic() - t0 < HEADER_TIMEOUT + 5:
        try:
            s.send(b"a")  # a byte every 0.2 s: far quicker than the deadline
            if s.recv(100) == b"":
                closed_after = time.monotonic() - t0
                break
        except TimeoutError:
            continue
        except OSError:
            closed_after = time.monotonic() - t0
            break
    s.close()
    assert closed_after is not None, "a trickling client was never closed"
    assert HEADER_TIMEOUT - 0.3 < closed_after < HEADER_TIMEOUT + 2, closed_after


def test_keepalive_connection_serves_requests_then_times_out(fnode: GarageNode) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fnode.admin_port, timeout=10)
    for _ in range(3):
        conn.request("GET", "/health")
        r = conn.getresponse()
        assert r.status == 200
        r.read()
    sock = conn.sock
    assert sock is not None
    sock.settimeout(HEADER_TIMEOUT + 3)
    assert sock.recv(10) == b""  # idle past the header deadline: closed
    conn.close()


def test_accept_errors_out_of_fds_logged_once_per_interval(private_node: GarageNode) -> None:
    """The server runs out of file descriptors (here: its limit lowered, then RPC
    connections that never finish a handshake): asyncio's failed accept() is logged once
    per interval with a count, without a traceback, and the server recovers."""
    private_node.start()
    key = private_node.create_key()
    private_node.create_bucket("fds", key[0])
    assert private_node.proc is not None
    pid = private_node.proc.pid
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 60, in_use + 60))
    start = private_node.log_path.stat().st_size
    hogs = []
    for _ in range(100):  # more than the headroom: the RPC port is not capped
        hogs.append(socket.create_connection(("127.0.0.1", private_node.rpc_port)))
    waiting = []
    for _ in range(4):  # S3 connections left in the backlog while accept() fails
        waiting.append(socket.create_connection(("127.0.0.1", private_node.s3_port)))
        time.sleep(0.8)
    for s in hogs:
        s.close()
    for s in waiting:
        s.close()
    time.sleep(0.5)
    s3 = _s3(private_node, key)
    s3.put_object(Bucket="fds", Key="after", Body=b"recovered")
    assert s3.get_object(Bucket="fds", Key="after")["Body"].read() == b"recovered"
    text = _log_tail(private_node, start)
    accept_lines = [ln for ln in text.splitlines() if "accept" in ln]
    assert 1 <= len(accept_lines) <= 2, text[-3000:]
    assert "EMFILE" in accept_lines[0]
    assert "Traceback" not in text


def _s3(node: GarageNode, creds: tuple[str, str]) -> Any:
    import boto3
    # Standard retries, as SDKs do: an idle pooled connection evicted under a flood is
    # re-opened (the server closes idle ones first, never a request in progress).
    return boto3.client("s3", endpoint_url=node.endpoint, region_name="garage",
                        aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 3, "mode": "standard"},
                                      connect_timeout=5, read_timeout=10))


# ------------------------------------------------------------------ log injection

def test_client_bytes_cannot_forge_log_lines(node: GarageNode, raw: RawClient) -> None:
    start = node.log_path.stat().st_size
    for target in ("/inj%0aFORGED%20INFO%20line", "/inj/%00nul", "/inj/%1b%5b31mred",
                   "/inj/%e2%80%a8sep", "/inj%0d%0aFORGED2"):
        r = raw.send("GET", target, {"Host": raw.host})
        assert r.status in (400, 403, 404)
    deadline = time.monotonic() + 5
    while b"FORGED2" not in node.log_path.read_bytes()[start:] and time.monotonic() < deadline:
        time.sleep(0.05)
    data = node.log_path.read_bytes()[start:]
    assert b"\x00" not in data and b"\x1b" not in data and b"\r" not in data
    assert "\u2028".encode() not in data
    for line in data.decode().splitlines():
        assert not line.startswith("FORGED"), line
    text = data.decode()
    assert "/inj\\x0aFORGED INFO line" in text and "\\x00nul" in text
    assert "\\x1b[31mred" in text and "\\u2028sep" in text


# ------------------------------------------------------------------ /check

def _check(node: GarageNode, domain: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=10)
    try:
        c.request("GET", f"/check?domain={domain}")
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_check_domain_only_for_served_domains(fnode: GarageNode,
                                              fcreds: tuple[str, str]) -> None:
    fnode.create_bucket("site", fcreds[0])
    fnode.create_bucket("plain", fcreds[0])
    site = fnode.admin("GetBucketInfo", query={"globalAlias": "site"})
    # No website access yet: neither the bare alias nor the website domain is served.
    assert _check(fnode, "site") == 400
    assert _check(fnode, "site.web.garage.localhost") == 400
    fnode.admin("UpdateBucket", query={"id": site["id"]},
                body={"websiteAccess": {"enabled": True, "indexDocument": "index.html"}})
    assert _check(fnode, "site") == 200
    assert _check(fnode, "site.web.garage.localhost") == 200
    # Not domains of this node: an alias followed by anything, the root domain itself.
    assert _check(fnode, "site.anything") == 400
    assert _check(fnode, "site.example.com") == 400
    assert _check(fnode, "web.garage.localhost") == 400
    assert _check(fnode, "nosuch.web.garage.localhost") == 400
    # Buckets without website access: not on the website domain...
    assert _check(fnode, "plain") == 400
    assert _check(fnode, "plain.web.garage.localhost") == 400
    # ...but vhost-style S3 (<bucket><s3_api.root_domain>) is served for any bucket.
    assert _check(fnode, "plain.s3.garage.localhost") == 200
    assert _check(fnode, "nosuch.s3.garage.localhost") == 400
    assert _check(fnode, "") == 400


# ------------------------------------------------------------------ stray .tmp files

def test_stray_temporary_block_files_removed_at_start(private_node: GarageNode) -> None:
    private_node.start()
    key = private_node.create_key()
    private_node.create_bucket("tmpb", key[0])
    s3 = private_node.s3(*key)
    body = os.urandom(300_000)
    s3.put_object(Bucket="tmpb", Key="k", Body=body)
    private_node.kill()
    data = private_node.root / "data"
    blocks = sorted(p for p in data.rglob("*") if p.is_file())
    assert blocks
    before = {p: p.read_bytes() for p in blocks}
    d = blocks[0].parent
    strays = [d / (blocks[0].name.removesuffix(".zst") + ".tmp1a2b3c4d0"),
              d / ("ab" * 32 + ".zst.tmp99aa88bb17")]
    for p in strays:
        p.write_bytes(b"half a block")
    other = data / "notes.tmp"  # not a block store name: left alone
    other.write_bytes(b"x")
    private_node.start()
    assert not any(p.exists() for p in strays)
    assert other.exists()
    assert {p: p.read_bytes() for p in blocks} == before
    assert "removed 2 temporary block file(s)" in private_node.log_path.read_text()
    assert s3.get_object(Bucket="tmpb", Key="k")["Body"].read() == body


# ------------------------------------------------------------------ GET failing mid-body

def test_get_with_a_later_block_unreadable_cuts_the_connection(
        fnode: GarageNode, fcreds: tuple[str, str]) -> None:
    s3 = _s3(fnode, fcreds)
    body = os.urandom(6 * BLOCK)  # random: stored uncompressed, 6 blocks
    s3.put_object(Bucket="front", Key="multi", Body=body)
    hashes = [block_hash(body[i:i + BLOCK]).hex() for i in range(0, len(body), BLOCK)]
    files = {p.name.removesuffix(".zst"): p for p in (fnode.root / "data").rglob("*")
             if p.is_file()}
    victim = files[hashes[4]]  # only the fifth block: headers are long sent by then
    raw_bytes = bytearray(victim.read_bytes())
    raw_bytes[100] ^= 0xFF
    victim.write_bytes(bytes(raw_bytes))
    log_start = fnode.log_path.stat().st_size

    rc = RawClient(fnode, fcreds)
    signed = rc.sign("GET", "/front/multi")
    sock = socket.create_connection(("127.0.0.1", fnode.s3_port), timeout=10)
    sock.sendall(b"GET /front/multi HTTP/1.1\r\n" + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in signed.headers.items()) + b"\r\n")
    received = read_until_close(sock)
    head, _, got = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"content-length: {len(body)}".encode() in head.lower()
    assert len(got) < len(body)
    assert got == body[:len(got)]  # what was sent is right, and nothing else
    assert b"HTTP/1.1" not in got
    # The blocks before it are intact and still served.
    r = s3.get_object(Bucket="front", Key="multi", Range=f"bytes=0-{BLOCK - 1}")
    assert r["Body"].read() == body[:BLOCK]
    text = _log_tail(fnode, log_start)
    assert "connection cut after" in text and "Traceback" not in text


# ------------------------------------------------------------------ admin API input

def _admin_raw(node: GarageNode, method: str, path: str, body: bytes | None = None,
               headers: dict[str, Any] | None = None) -> tuple[int, Any]:
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=20)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        h = {"Authorization": f"Bearer {node.admin_token}", **(headers or {})}
        for k, v in h.items():
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data.startswith(b"{") else data
    finally:
        c.close()


BAD_BODIES: list[tuple[str, Any]] = [
    ("CreateKey", {"allow": "bad"}),
    ("CreateKey", "a string body"),
    ("CreateKey", [1, 2]),
    ("CreateKey", {"name": 5}),
    ("UpdateKey?id=GKnope", {"deny": {"createBucket": "yes"}}),
    ("ImportKey", {"accessKeyId": "GK00", "secretAccessKey": None}),
    ("UpdateClusterLayout", {"roles": "x"}),
    ("UpdateClusterLayout", {"roles": ["x"]}),
    ("UpdateClusterLayout", {"roles": [{"id": 5}]}),
    ("UpdateClusterLayout", {"roles": [{"id": "a" * 64, "zone": "z", "capacity": "1G"}]}),
    ("UpdateClusterLayout", {"parameters": {"zoneRedundancy": {}}}),
    ("UpdateClusterLayout", {"parameters": {"zoneRedundancy": {"atLeast": "2"}}}),
    ("UpdateClusterLayout", {"parameters": {"zoneRedundancy": "minimum"}}),
    ("ApplyClusterLayout", {"version": True}),
    ("CreateBucket", {"globalAlias": 7}),
    ("CreateBucket", {"localAlias": {"alias": "la"}}),
    ("CreateBucket", {"localAlias": "la"}),
    ("AllowBucketKey", {"bucketId": 1, "accessKeyId": "GK", "permissions": {}}),
    ("AllowBucketKey", {"bucketId": "00", "accessKeyId": "GK", "permissions": []}),
    ("UpdateBucket?id=00", {"quotas": {"maxSize": "big"}}),
    ("UpdateBucket?id=00", {"websiteAccess": "on"}),
    ("AddBucketAlias", {"bucketId": "00", "globalAlias": ["x"]}),
    ("GetBlockInfo", {"blockHash": 12}),
    ("ListWorkers", {"busyOnly": "true"}),
]


@pytest.mark.parametrize(("endpoint", "body"), BAD_BODIES)
def test_admin_malformed_json_is_400(node: GarageNode, endpoint: str, body: Any) -> None:
    status, data = _admin_raw(node, "POST", f"/v2/{endpoint}", json.dumps(body).encode())
    assert status == 400, data
    assert data["code"] == "InvalidRequest" and data["message"]


@pytest.mark.parametrize("raw_body", [b'{"name": "\xff\xfe"}', b"[" * 100_000, b"{nope"],
                         ids=["not-utf8", "nested-100k", "not-json"])
def test_admin_undecodable_body_is_400(node: GarageNode, raw_body: bytes) -> None:
    status, data = _admin_raw(node, "POST", "/v2/CreateKey", raw_body)
    assert status == 400 and data["code"] == "InvalidRequest"


def test_admin_non_utf8_authorization_is_403(node: GarageNode) -> None:
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=10)
    c.putrequest("GET", "/v2/ListBuckets")
    c.putheader("Authorization", b"Bearer \xff\xfe\xc3(")
    c.endheaders()
    r = c.getresponse()
    assert r.status == 403 and json.loads(r.read())["code"] == "AccessDenied"
    c.close()


def test_admin_huge_body_is_413(node: GarageNode) -> None:
    # Declared length over the limit: refused before reading it.
    s = socket.create_connection(("127.0.0.1", node.admin_port), timeout=10)
    s.sendall(f"POST /v2/CreateKey HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              f"{node.admin_token}\r\nContent-Length: {5 * 1024 * 1024}\r\n\r\n".encode()
              + b"{" + b" " * 1000)
    status, _, body = read_http_response(s)
    s.close()
    assert status == 413 and json.loads(body)["code"] == "PayloadTooLarge"
    # Chunked, no declared length: refused once the limit is crossed.
    s = socket.create_connection(("127.0.0.1", node.admin_port), timeout=10)
    s.sendall(f"POST /v2/CreateKey HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              f"{node.admin_token}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b" " * 65536
    result: list[tuple[int, dict[str, str], bytes]] = []
    reader = threading.Thread(target=lambda: result.append(read_http_response(s)))
    reader.start()
    try:
        for _ in range(5 * 16):
            s.sendall(b"10000\r\n" + chunk + b"\r\n")
    except OSError:
        pass  # the server answered and closed: what we want
    reader.join(10)
    s.close()
    assert result and result[0][0] == 413


def test_admin_log_has_no_traceback_after_bad_input(node: GarageNode) -> None:
    text = node.log_path.read_text(errors="replace")
    assert "Traceback" not in text and "-> 500" not in text


# ------------------------------------------------------------------ RPC frames

def _rpc_client(node: GarageNode) -> AdminClient:
    from pygarage.util.config import load_config
    cfg = load_config(node.config_path)
    return AdminClient(("127.0.0.1", node.rpc_port), cfg.rpc_secret)


# Malformed frames and bad peers on the new transport: tests/integration/test_rpc_bad_peers.py
# and tests/unit/net/test_conn.py.


@pytest.mark.parametrize("body", ["not a dict", {"endpoint": 5}, {"endpoint": "ListBuckets",
                                  "query": {"id": 5}}, {"endpoint": "CreateKey",
                                                        "body": {"allow": "bad"}}])
def test_rpc_bad_admin_body_is_an_error_answer(node: GarageNode, body: Any) -> None:
    c = _rpc_client(node)
    from pygarage.cli.client import AdminCallError
    with pytest.raises(AdminCallError):
        c.rpc("admin", body)
    assert c.call("GetClusterHealth")["status"] == "healthy"  # same link still works
    c.close()
    assert "Traceback" not in node.log_path.read_text(errors="replace")
