"""A blocking RPC client over the same handshake and connection core as the daemon: what
the CLI uses for its few sequential calls, without an event loop."""

from __future__ import annotations

import socket
from typing import Any

from nacl.signing import SigningKey

from . import conn as core
from . import handshake as hs
from .secretstream import Opener, Sealer, StreamError


class LinkError(Exception):
    """The link failed (unreachable, handshake refused, peer broke the protocol)."""


class RemoteError(Exception):
    """The remote handler answered with an error: str(e) is its message."""


class SyncClient:
    def __init__(self, addr: tuple[str, int], secret: bytes, *,
                 key: SigningKey | None = None, expected: bytes | None = None,
                 timeout: float = 30.0):
        self.addr = addr
        try:
            self.sock = socket.create_connection(addr, timeout=timeout)
        except OSError as e:
            raise LinkError(f"cannot reach {addr[0]}:{addr[1]} ({e})") from None
        try:
            self.peer_id = self._handshake(secret, key or SigningKey.generate(), expected)
        except BaseException:
            self.close()
            raise
        self._core = core.Connection(initiator=True)

    def _recv(self) -> bytes:
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            raise LinkError("the node did not answer in time") from None
        except OSError as e:
            raise LinkError(f"link error: {e}") from None
        if not data:
            raise LinkError("the node closed the connection")
        return data

    def _handshake(self, secret: bytes, key: SigningKey, expected: bytes | None) -> bytes:
        shake = hs.ClientHandshake(secret, key, expected)
        self.sock.sendall(shake.start())
        try:
            while not shake.done:
                try:
                    data = self._recv()
                except LinkError:
                    raise LinkError("the node closed the connection during the handshake "
                                    "(wrong rpc_secret?)") from None
                self.sock.sendall(shake.receive(data))
        except hs.HandshakeError as e:
            raise LinkError(f"RPC handshake failed: {e}") from None
        assert shake.session is not None
        self._sealer = Sealer(shake.session.send_key)
        self._opener = Opener(shake.session.recv_key)
        self._early = shake.rest()
        return shake.session.peer_pub

    def _flush(self) -> None:
        while self._core.has_data:
            out = self._core.data_to_send(1 << 20)
            if not out:
                return
            for rec in self._sealer.seal_all(out):
                self.sock.sendall(rec)

    def call(self, path: str, body: Any, prio: int = core.PRIO_HIGH) -> Any:
        """-> the response body; RemoteError if the handler failed. A streamed response
        body is read and dropped (the CLI's calls do not use one)."""
        sid = self._core.send_request(path, body, prio)
        self._flush()
        result: Any = None
        answered = False
        while True:
            data, self._early = self._early or self._recv(), b""
            try:
                records = self._opener.feed(data)
            except StreamError as e:
                raise LinkError(f"RPC link error: {e}") from None
            for rec in records:
                for ev in self._core.receive_data(rec):
                    if isinstance(ev, core.ProtocolError) and ev.fatal:
                        raise LinkError(f"RPC protocol error: {ev.message}")
                    if isinstance(ev, core.Request):
                        self._core.send_response(ev.sid, False, "the CLI serves no endpoint")
                    elif isinstance(ev, core.Data):
                        self._core.consumed(ev.sid, len(ev.data))
                    elif isinstance(ev, core.Response) and ev.sid == sid:
                        if not ev.ok:
                            raise RemoteError(str(ev.body))
                        result, answered = ev.body, True
            self._flush()
            if answered and not self._core.is_open(sid):
                return result

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
