"""rpc_bind_outgoing: outgoing RPC connections leave from rpc_bind_addr's IP, so a peer
(or a fault-injection proxy) sees which node dialed it; off, the kernel picks."""

from __future__ import annotations

import secrets

import pytest
from nacl.signing import SigningKey

from pygarage.net.netapp import NetApp
from pygarage.util.config import ConfigError, config_from_dict

SECRET = secrets.token_bytes(32)
BASE = {"metadata_dir": "/tmp/m", "data_dir": "/tmp/d", "rpc_secret": "00" * 32,
        "replication_factor": 1}


async def _remote_seen_by(server: NetApp, client: NetApp) -> str:
    link = await client.connect("127.0.0.12", server.port, expected=server.id)
    # The server's end of the same link: the address it saw the client dial from.
    for _ in range(100):
        peer_end = server.links.get(client.id)
        if peer_end is not None:
            return peer_end.remote.rsplit(":", 1)[0]
        await link.ping(2)
    raise AssertionError("the server never registered the link")


async def test_outgoing_connection_leaves_from_bound_ip() -> None:
    server = NetApp(SECRET, SigningKey.generate())
    await server.listen("127.0.0.12", 0)
    bound = NetApp(SECRET, SigningKey.generate(), bind_outgoing="127.0.0.11")
    free = NetApp(SECRET, SigningKey.generate())
    try:
        assert await _remote_seen_by(server, bound) == "127.0.0.11"
        assert await _remote_seen_by(server, free) == "127.0.0.1"  # kernel's choice
    finally:
        for app in (bound, free, server):
            await app.close()


def test_config_key() -> None:
    assert config_from_dict(dict(BASE, rpc_bind_addr="127.0.0.11:3901")).rpc_outgoing_ip is None
    on = config_from_dict(dict(BASE, rpc_bind_addr="127.0.0.11:3901", rpc_bind_outgoing=True))
    assert on.rpc_bind_outgoing and on.rpc_outgoing_ip == "127.0.0.11"
    v6 = config_from_dict(dict(BASE, rpc_bind_addr="[::1]:3901", rpc_bind_outgoing=True))
    assert v6.rpc_outgoing_ip == "::1"
    # A wildcard bind address constrains nothing: the kernel still picks.
    for wild in ("[::]:3901", "0.0.0.0:3901"):
        c = config_from_dict(dict(BASE, rpc_bind_addr=wild, rpc_bind_outgoing=True))
        assert c.rpc_outgoing_ip is None
    with pytest.raises(ConfigError, match="rpc_bind_outgoing must be true or false"):
        config_from_dict(dict(BASE, rpc_bind_addr="127.0.0.1:1", rpc_bind_outgoing="yes"))
