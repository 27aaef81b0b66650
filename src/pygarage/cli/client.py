"""The CLI's link to a running node: the same authenticated, encrypted RPC the nodes use,
keyed by rpc_secret, carrying Garage admin API v2 calls (net/sync_client.py: blocking,
one socket, the daemon's handshake and connection core)."""

from __future__ import annotations

from typing import Any

from ..net.sync_client import LinkError, RemoteError, SyncClient
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
            self._link = SyncClient(addr, secret)
        except LinkError as e:
            raise ConnectError(f"{e}; is `garage server` running with this config and "
                               "rpc_secret?") from None
        spub = self._link.peer_id
        if expected_id and not spub.hex().startswith(expected_id.lower()):
            self._link.close()
            raise ConnectError(f"the node at {addr[0]}:{addr[1]} has id "
                               f"{spub.hex()[:16]}..., not {expected_id[:16]}...")
        self.node_id = spub.hex()

    def rpc(self, path: str, body: Any) -> Any:
        try:
            return self._link.call(path, body)
        except UnicodeEncodeError:
            # A byte that is not UTF-8 in an argument (Python keeps it as a lone surrogate):
            # refused before anything is sent, as Garage refuses such arguments.
            raise AdminCallError("an argument is not valid UTF-8 text") from None
        except OverflowError:
            # msgpack carries integers from -2^63 to 2^64-1 (Garage's i64/u64): refused
            # before anything is sent.
            raise AdminCallError("a number in the arguments is out of range "
                                 "(at most 18446744073709551615)") from None
        except RemoteError as e:
            raise AdminCallError(str(e)) from None
        except LinkError as e:
            raise ConnectError(str(e)) from None

    def call(self, endpoint: str, *, query: dict[str, str] | None = None,
             body: object = None) -> Any:
        return self.rpc("admin", {"endpoint": endpoint, "query": query or {}, "body": body})

    def close(self) -> None:
        self._link.close()
