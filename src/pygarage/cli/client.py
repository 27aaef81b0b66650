"""The CLI's link to a running node: the same authenticated, encrypted RPC the nodes use,
keyed by rpc_secret, carrying Garage admin API v2 calls. Synchronous, one socket."""

from __future__ import annotations

import socket
from typing import Any

from nacl.signing import SigningKey

from ..net import handshake as hs
from ..net.framing import FrameError, Opener, Sealer, frame_len
from ..util.config import ConfigError, load_config, split_host_port


class AdminCallError(Exception):
    """str(e) is a message for a person."""


class ConnectError(AdminCallError):
    pass


def _local_addr(addr: str) -> tuple[str, int]:
    host, port = split_host_port(addr)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return host, port


def connect(config_path: str, rpc_host: str | None, rpc_secret: str | None) -> AdminClient:
    expected_id: str | None = None
    secret_hex = rpc_secret
    addr: tuple[str, int] | None = None
    if rpc_host:
        node, _, hostport = rpc_host.rpartition("@")
        expected_id = node or None
        addr = _local_addr(hostport)
    if secret_hex is None or addr is None:
        try:
            cfg = load_config(config_path)
        except ConfigError as e:
            raise ConnectError(f"{e} (or pass --rpc-host and --rpc-secret)") from None
        if secret_hex is None:
            secret_hex = cfg.rpc_secret.hex()
        if addr is None:
            addr = _local_addr(cfg.rpc_public_addr or cfg.rpc_bind_addr)
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        raise ConnectError("rpc secret must be 64 hex digits") from None
    return AdminClient(addr, secret, expected_id)


class AdminClient:
    def __init__(self, addr: tuple[str, int], secret: bytes, expected_id: str | None = None):
        self.addr = addr
        try:
            self.sock = socket.create_connection(addr, timeout=30)
        except OSError as e:
            raise ConnectError(f"cannot reach the node's RPC at {addr[0]}:{addr[1]} ({e}); "
                               "is `garage server` running with this config?") from None
        self._handshake(secret, expected_id)
        self._next_id = 1

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectError("the node closed the connection (wrong rpc_secret?)")
            buf += chunk
        return bytes(buf)

    def _handshake(self, secret: bytes, expected_id: str | None) -> None:
        shake = hs.ClientHandshake(secret, SigningKey.generate())
        self.sock.sendall(shake.start())
        try:
            while not shake.done:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectError("the node closed the connection during the handshake "
                                       "(wrong rpc_secret?)")
                self.sock.sendall(shake.receive(data))
        except hs.HandshakeError as e:
            raise ConnectError(f"RPC handshake failed: {e} (check rpc_secret)") from None
        assert shake.session is not None
        spub = shake.session.peer_pub
        if expected_id and not spub.hex().startswith(expected_id.lower()):
            raise ConnectError(f"the node at {self.addr[0]}:{self.addr[1]} has id "
                               f"{spub.hex()[:16]}..., not {expected_id[:16]}...")
        self.sealer = Sealer(shake.session.send_key)
        self.opener = Opener(shake.session.recv_key)
        self.node_id = spub.hex()

    def rpc(self, path: str, body: Any) -> Any:
        req_id = self._next_id
        self._next_id += 1
        self.sock.sendall(self.sealer.seal([req_id, path, body]))
        try:
            resp = self.opener.open(self._recv(frame_len(self._recv(4))))
        except FrameError as e:
            raise ConnectError(f"RPC link error: {e}") from None
        _rid, ok, result = resp
        if not ok:
            raise AdminCallError(str(result))
        return result

    def call(self, endpoint: str, *, query: dict[str, str] | None = None,
             body: object = None) -> Any:
        return self.rpc("admin", {"endpoint": endpoint, "query": query or {}, "body": body})

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
