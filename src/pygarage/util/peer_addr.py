"""Node addresses as Garage writes them: "<node id hex>@<host>:<port>" (bootstrap_peers,
`garage node connect`, the peer list), and this node's own public RPC address."""

from __future__ import annotations

import ipaddress
import logging
import socket

from .config import ConfigError, split_host_port
from .ids import is_hex

log = logging.getLogger(__name__)


class PeerAddrError(ValueError):
    pass


def parse_peer(text: str) -> tuple[bytes, str, int]:
    """'<id>@host:port' -> (id, host, port); PeerAddrError says what is wrong."""
    node, sep, hostport = text.strip().rpartition("@")
    if not sep or not is_hex(node, 64):  # either case, as Garage reads it
        raise PeerAddrError(f"invalid node address {text!r}: expected "
                            "<node id: 64 hex digits>@<host>:<port>")
    try:
        host, port = split_host_port(hostport)
    except ConfigError:
        raise PeerAddrError(f"invalid node address {text!r}: expected "
                            "<node id>@<host>:<port>") from None
    if not 0 < port < 65536 or not hostport.rpartition(":")[0]:
        raise PeerAddrError(f"invalid node address {text!r}: bad host or port")
    return bytes.fromhex(node), host, port


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _default_ip() -> str | None:
    """The address of the interface holding the default route (a UDP connect sends
    nothing); None without one."""
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                ip: str = s.getsockname()[0]
                return ip
        except OSError:
            continue
    return None


def own_public_addr(rpc_public_addr: str | None, rpc_bind_addr: str) -> str | None:
    """The address other nodes should dial: rpc_public_addr; else the bind address when it
    names one interface; else, as Garage, the default-route IP with the bind port. None when
    nothing fits: peers then use the IP they see us connect from (with our port)."""
    if rpc_public_addr:
        return rpc_public_addr
    host, port = split_host_port(rpc_bind_addr)
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        unspecified = False  # a host name: dialable as written
    if not unspecified:
        return format_addr(host, port)
    ip = _default_ip()
    if ip is None:
        log.warning("could not autodetect rpc_public_addr: peers will use the address "
                    "they see this node connect from")
        return None
    addr = format_addr(ip, port)
    log.warning("Using autodetected rpc_public_addr: %s. Consider specifying it explicitly "
                "in the configuration file if possible.", addr)
    return addr
