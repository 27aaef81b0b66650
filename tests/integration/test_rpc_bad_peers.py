"""Bad peers against a real node's RPC port (raw sockets): each is dropped and logged in one
line, learns nothing, and the node keeps serving the CLI."""

from __future__ import annotations

import re
import secrets
import socket
import struct
import time

import msgpack
from nacl.signing import SigningKey

from pygarage.net import conn as core
from pygarage.net import handshake as hs
from pygarage.net.secretstream import Opener, Sealer
from pygarage.testing.node import GarageNode


def _secret(node: GarageNode) -> bytes:
    m = re.search(r'rpc_secret = "([0-9a-f]{64})"', node.config_path.read_text())
    assert m
    return bytes.fromhex(m.group(1))


def _sock(node: GarageNode) -> socket.socket:
    return socket.create_connection(("127.0.0.1", node.rpc_port), timeout=10)


def _recv_all(s: socket.socket) -> bytes:
    """Everything the node sends until it closes the connection."""
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def _session(node: GarageNode) -> tuple[socket.socket, Sealer, Opener]:
    s = _sock(node)
    shake = hs.ClientHandshake(_secret(node), SigningKey.generate())
    s.sendall(shake.start())
    m2 = b""
    while len(m2) < hs.MSG2_LEN:
        m2 += s.recv(hs.MSG2_LEN - len(m2))
    s.sendall(shake.receive(m2))
    assert shake.session is not None
    return s, Sealer(shake.session.send_key), Opener(shake.session.recv_key)


def _drops(node: GarageNode) -> list[str]:
    return [line for line in node.log_path.read_text().splitlines()
            if "RPC connection with" in line and "dropped" in line]


def _wait_drops(node: GarageNode, n: int) -> list[str]:
    for _ in range(100):
        lines = _drops(node)
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    return _drops(node)


def test_bad_peers_are_dropped_logged_and_learn_nothing(private_node: GarageNode) -> None:
    node = private_node
    node.start()
    secret = _secret(node)
    expected: list[str] = []

    # Garbage instead of a handshake.
    s = _sock(node)
    s.sendall(secrets.token_bytes(200))
    assert _recv_all(s) == b""
    expected.append("not a pygarage RPC client")

    # A client with the wrong rpc_secret: not a single byte comes back.
    s = _sock(node)
    s.sendall(hs.ClientHandshake(secrets.token_bytes(32), SigningKey.generate()).start())
    assert _recv_all(s) == b""
    expected.append("the client does not know our rpc_secret")

    # Truncated first message, then the client goes away.
    s = _sock(node)
    s.sendall(hs.ClientHandshake(secret, SigningKey.generate()).start()[:30])
    s.shutdown(socket.SHUT_WR)
    assert _recv_all(s) == b""
    expected.append("connection closed during the handshake")

    # Tampered third message.
    s = _sock(node)
    shake = hs.ClientHandshake(secret, SigningKey.generate())
    s.sendall(shake.start())
    m3 = bytearray(shake.receive(s.recv(hs.MSG2_LEN, socket.MSG_WAITALL)))
    m3[40] ^= 1
    s.sendall(bytes(m3))
    assert _recv_all(s) == b""
    expected.append("the client failed to authenticate")

    # After the handshake: a tampered record, a record cut short, a frame of unknown kind.
    s, sealer, _ = _session(node)
    rec = bytearray(sealer.seal(b"x" * 100))
    rec[-1] ^= 1
    s.sendall(bytes(rec))
    assert _recv_all(s) == b""
    expected.append("record failed authentication")

    s, sealer, _ = _session(node)
    s.sendall(sealer.seal(b"x" * 100)[:50])
    s.shutdown(socket.SHUT_WR)
    assert _recv_all(s) == b""
    expected.append("stream truncated")

    s, sealer, _ = _session(node)
    s.sendall(sealer.seal(struct.pack(">BII", 77, 1, 0)))
    assert _recv_all(s) == b""
    expected.append("protocol error: stream 1 starts without a head")

    lines = _wait_drops(node, len(expected))
    assert len(lines) == len(expected), lines
    for line, why in zip(lines, expected, strict=True):
        assert line.endswith(why), (line, why)
        assert secret.hex() not in line

    # A malformed message ([id, path, body], the old format) is answered, not fatal.
    s, sealer, opener = _session(node)
    c = core.Connection(initiator=True)
    c.send_request("admin", None)
    c.data_to_send()  # stream 1 is ours on paper; the raw bytes below replace its head
    bad = msgpack.packb([1, "admin", {"endpoint": "GetClusterStatus"}])
    s.sendall(sealer.seal(struct.pack(">BII", core.HEAD_END, 1, len(bad)) + bad))
    sid = c.send_request("admin", {"endpoint": "GetClusterHealth", "query": {}, "body": None})
    s.sendall(sealer.seal(c.data_to_send()))
    events: list[core.Event] = []
    while len(events) < 2:
        data = s.recv(65536)
        assert data, "the node closed the link"
        events += [e for r in opener.feed(data) for e in c.receive_data(r)]
    assert events[0] == core.Response(1, False, "malformed request", False)
    assert isinstance(events[1], core.Response) and events[1].sid == sid and events[1].ok
    s.close()

    # The node keeps serving.
    assert "HEALTHY NODES" in node.cli("status").stdout
    assert "Traceback" not in node.log_path.read_text()
