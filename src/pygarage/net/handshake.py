"""Secret handshake (pure, sans-IO), in the spirit of Scuttlebutt's SHS as used by Garage.

Both sides prove they know the network key (rpc_secret) and own their ed25519 node key; the
session keys come from an ephemeral X25519 exchange, so a capture of past traffic stays
unreadable even to someone who later obtains rpc_secret and the node keys (forward secrecy).

    1. C -> S  MAGIC(8) | ec(32) | mac(K, MAGIC|ec)(32)                       72 bytes
    2. S -> C  es(32) | box[k2](server_pub(32) | sig_S("server" | h2)(64))   144 bytes
    3. C -> S  box[k3](client_pub(32) | sig_C("client" | h3)(64))            112 bytes

K = rpc_secret, ec/es the ephemeral X25519 public keys, ee = X25519(ec, es), h2/h3 running
transcript hashes, k2/k3 = KDF(K, ee, h). The server answers nothing to a client that fails
step 1, so such a peer learns nothing (not even the server's identity). The server's identity
is boxed under a key only a holder of K and of the client's ephemeral can derive; the client's
identity likewise. Signatures cover the whole transcript, so no message can be replayed into
another session. The client may send boxed frames right after message 3.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from nacl import bindings as sodium
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

MAGIC = b"PGRPC2\x00\x00"
MSG1_LEN = len(MAGIC) + 32 + 32
_IDENT_LEN = 32 + 64
_BOX_OVERHEAD = sodium.crypto_secretbox_MACBYTES
MSG2_LEN = 32 + _IDENT_LEN + _BOX_OVERHEAD
MSG3_LEN = _IDENT_LEN + _BOX_OVERHEAD
_ZERO_NONCE = bytes(sodium.crypto_secretbox_NONCEBYTES)


class HandshakeError(Exception):
    """The peer failed the handshake; str(e) is safe to log (no secret, no peer bytes)."""


@dataclass(frozen=True)
class Session:
    peer_pub: bytes  # the peer's ed25519 node key (its node id)
    send_key: bytes
    recv_key: bytes


def _h(*parts: bytes) -> bytes:
    return hashlib.blake2b(b"".join(parts), digest_size=32).digest()


def _kdf(secret: bytes, label: bytes, *parts: bytes) -> bytes:
    return hashlib.blake2b(b"".join(parts), key=secret, person=label,
                           digest_size=32).digest()


def _hello_mac(secret: bytes, eph: bytes) -> bytes:
    return _kdf(secret, b"pg-hs-hello", MAGIC, eph)


def _ephemeral(given: bytes | None) -> tuple[bytes, bytes]:
    """(secret, public) X25519 ephemeral; `given` fixes the secret for test vectors."""
    sk = given if given is not None else sodium.randombytes(32)
    return sk, sodium.crypto_scalarmult_base(sk)


def _dh(sk: bytes, pk: bytes) -> bytes:
    try:
        shared = sodium.crypto_scalarmult(sk, pk)
    except Exception:  # libsodium refuses low-order points: the peer is hostile
        raise HandshakeError("invalid ephemeral key") from None
    if not any(shared):
        raise HandshakeError("invalid ephemeral key")
    return shared


def _ident(key: SigningKey, role: bytes, h: bytes) -> bytes:
    return bytes(key.verify_key) + key.sign(b"pygarage-hs-" + role + h).signature


def _check_ident(plain: bytes, role: bytes, h: bytes) -> bytes:
    pub, sig = plain[:32], plain[32:]
    try:
        VerifyKey(pub).verify(b"pygarage-hs-" + role + h, sig)
    except (BadSignatureError, ValueError):
        raise HandshakeError(f"the {role.decode()}'s node key signature is invalid") from None
    return pub


def _open(key: bytes, box: bytes, what: str) -> bytes:
    try:
        return sodium.crypto_secretbox_open(box, _ZERO_NONCE, key)
    except CryptoError:
        raise HandshakeError(what) from None


def _session_keys(secret: bytes, ee: bytes, h: bytes) -> tuple[bytes, bytes]:
    """-> (client-to-server, server-to-client)."""
    return _kdf(secret, b"pg-hs-c2s", ee, h), _kdf(secret, b"pg-hs-s2c", ee, h)


class _Machine:
    """Input buffering shared by both sides: `receive` takes any split of the peer's bytes."""

    def __init__(self, secret: bytes, key: SigningKey):
        if len(secret) != 32:
            raise ValueError("rpc_secret must be 32 bytes")
        self._secret = secret
        self._key = key
        self._buf = bytearray()
        self._failed = False
        self.session: Session | None = None

    @property
    def done(self) -> bool:
        return self.session is not None

    def rest(self) -> bytes:
        """Bytes received after the handshake (the start of the boxed stream)."""
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def _take(self, data: bytes, n: int) -> bytes | None:
        if self._failed:
            raise HandshakeError("handshake already failed")
        self._buf += data
        if len(self._buf) < n:
            return None
        msg = bytes(self._buf[:n])
        del self._buf[:n]
        return msg

    def _fail(self, e: HandshakeError) -> HandshakeError:
        self._failed = True
        self._buf.clear()
        return e


class ClientHandshake(_Machine):
    """start() -> bytes to send; receive(data) -> bytes to send (b"" while waiting)."""

    def __init__(self, secret: bytes, key: SigningKey, expected_server: bytes | None = None,
                 *, ephemeral: bytes | None = None):
        super().__init__(secret, key)
        self._expected = expected_server
        self._esk, self._epk = _ephemeral(ephemeral)
        self._msg1 = MAGIC + self._epk + _hello_mac(secret, self._epk)

    def start(self) -> bytes:
        return self._msg1

    def receive(self, data: bytes) -> bytes:
        if self.done:
            self._buf += data
            return b""
        msg2 = self._take(data, MSG2_LEN)
        if msg2 is None:
            return b""
        try:
            return self._finish(msg2)
        except HandshakeError as e:
            raise self._fail(e) from None

    def _finish(self, msg2: bytes) -> bytes:
        es, box = msg2[:32], msg2[32:]
        ee = _dh(self._esk, es)
        h2 = _h(self._msg1, es)
        plain = _open(_kdf(self._secret, b"pg-hs-k2", ee, h2), box,
                      "the server does not know our rpc_secret")
        server_pub = _check_ident(plain, b"server", h2)
        if self._expected is not None and not hmac.compare_digest(server_pub,
                                                                  self._expected):
            raise HandshakeError("the server's node key is not the expected one")
        h3 = _h(h2, msg2, server_pub)
        msg3 = sodium.crypto_secretbox(_ident(self._key, b"client", h3), _ZERO_NONCE,
                                       _kdf(self._secret, b"pg-hs-k3", ee, h3))
        c2s, s2c = _session_keys(self._secret, ee, _h(h3, msg3))
        self._esk = b""  # forget the ephemeral: that is the forward secrecy
        self.session = Session(server_pub, c2s, s2c)
        return msg3


class ServerHandshake(_Machine):
    """receive(data) -> bytes to send (b"" while waiting); `done` once the client is proven."""

    def __init__(self, secret: bytes, key: SigningKey, *, ephemeral: bytes | None = None):
        super().__init__(secret, key)
        self._esk, self._epk = _ephemeral(ephemeral)
        self._state = 1
        self._ee = b""
        self._h3 = b""

    def receive(self, data: bytes) -> bytes:
        if self.done:
            self._buf += data
            return b""
        try:
            if self._state == 1:
                msg1 = self._take(data, MSG1_LEN)
                if msg1 is None:
                    return b""
                out = self._hello(msg1)
                self._state = 3
                # The client may have sent message 3 in the same segment.
                return out + self.receive(b"") if len(self._buf) >= MSG3_LEN else out
            msg3 = self._take(data, MSG3_LEN)
            if msg3 is not None:
                self._auth(msg3)
            return b""
        except HandshakeError as e:
            raise self._fail(e) from None

    def _hello(self, msg1: bytes) -> bytes:
        if not msg1.startswith(MAGIC):
            raise HandshakeError("not a pygarage RPC client")
        ec, mac = msg1[len(MAGIC):len(MAGIC) + 32], msg1[len(MAGIC) + 32:]
        if not hmac.compare_digest(mac, _hello_mac(self._secret, ec)):
            raise HandshakeError("the client does not know our rpc_secret")
        self._ee = _dh(self._esk, ec)
        self._esk = b""
        h2 = _h(msg1, self._epk)
        box = sodium.crypto_secretbox(_ident(self._key, b"server", h2), _ZERO_NONCE,
                                      _kdf(self._secret, b"pg-hs-k2", self._ee, h2))
        msg2 = self._epk + box
        self._h3 = _h(h2, msg2, bytes(self._key.verify_key))
        return msg2

    def _auth(self, msg3: bytes) -> None:
        plain = _open(_kdf(self._secret, b"pg-hs-k3", self._ee, self._h3), msg3,
                      "the client failed to authenticate")
        client_pub = _check_ident(plain, b"client", self._h3)
        c2s, s2c = _session_keys(self._secret, self._ee, _h(self._h3, msg3))
        self._ee = b""
        self.session = Session(client_pub, s2c, c2s)
