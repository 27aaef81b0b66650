"""Secret handshake (pure): both sides prove they know rpc_secret and own their ed25519
node key, then derive one key per direction for authenticated encryption.

    client -> server   MAGIC | client_pub(32) | client_nonce(32)
    server -> client   server_pub(32) | server_nonce(32) | mac_s(32) | sig_s(64)
    client -> server   mac_c(32) | sig_c(64)

mac_x = HMAC-SHA256(rpc_secret, role | transcript); sig_x = ed25519(role | transcript).
A peer without the secret learns nothing and cannot get a request through.
"""

from __future__ import annotations

import hashlib
import hmac

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

MAGIC = b"PGRPC1\x00\x00"
HELLO_LEN = len(MAGIC) + 64
SERVER_LEN = 32 + 32 + 32 + 64
CLIENT_LEN = 32 + 64


class HandshakeError(Exception):
    pass


def transcript(client_pub: bytes, client_nonce: bytes, server_pub: bytes,
               server_nonce: bytes) -> bytes:
    return MAGIC + client_pub + client_nonce + server_pub + server_nonce


def _mac(secret: bytes, role: bytes, t: bytes) -> bytes:
    return hmac.new(secret, role + t, hashlib.sha256).digest()


def prove(secret: bytes, key: SigningKey, role: bytes, t: bytes) -> bytes:
    return _mac(secret, role, t) + key.sign(role + t).signature


def check(secret: bytes, peer_pub: bytes, role: bytes, t: bytes, proof: bytes) -> None:
    if not hmac.compare_digest(proof[:32], _mac(secret, role, t)):
        raise HandshakeError("peer does not know the rpc_secret")
    try:
        VerifyKey(peer_pub).verify(role + t, proof[32:96])
    except BadSignatureError:
        raise HandshakeError("peer's node key signature is invalid") from None


def session_keys(secret: bytes, t: bytes) -> tuple[bytes, bytes]:
    """-> (client-to-server key, server-to-client key)."""
    c2s = hashlib.blake2b(t, key=secret, person=b"pg-c2s", digest_size=32).digest()
    s2c = hashlib.blake2b(t, key=secret, person=b"pg-s2c", digest_size=32).digest()
    return c2s, s2c
