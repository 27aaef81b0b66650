"""RPC handshake and frames: a wrong secret or a tampered frame is rejected."""

from __future__ import annotations

import secrets

import pytest
from nacl.signing import SigningKey

from pygarage.net import handshake as hs
from pygarage.net.framing import FrameError, Opener, Sealer, frame_len


def _run(server_secret: bytes, client_secret: bytes) -> tuple[bytes, bytes]:
    skey, ckey = SigningKey.generate(), SigningKey.generate()
    cpub, spub = bytes(ckey.verify_key), bytes(skey.verify_key)
    t = hs.transcript(cpub, secrets.token_bytes(32), spub, secrets.token_bytes(32))
    hs.check(client_secret, spub, b"S", t, hs.prove(server_secret, skey, b"S", t))
    hs.check(server_secret, cpub, b"C", t, hs.prove(client_secret, ckey, b"C", t))
    return hs.session_keys(server_secret, t)


def test_same_secret_agrees() -> None:
    s = secrets.token_bytes(32)
    c2s, s2c = _run(s, s)
    assert c2s != s2c


def test_wrong_secret_rejected() -> None:
    with pytest.raises(hs.HandshakeError, match="rpc_secret"):
        _run(secrets.token_bytes(32), secrets.token_bytes(32))


def test_role_swap_rejected() -> None:
    s, key = secrets.token_bytes(32), SigningKey.generate()
    t = b"x" * 80
    with pytest.raises(hs.HandshakeError):
        hs.check(s, bytes(key.verify_key), b"C", t, hs.prove(s, key, b"S", t))


def test_frames_roundtrip_and_tamper() -> None:
    k = secrets.token_bytes(32)
    sealer, opener = Sealer(k), Opener(k)
    f1, f2 = sealer.seal([1, "admin", {"a": 1}]), sealer.seal([2, "x", None])
    assert frame_len(f1[:4]) == len(f1) - 4
    assert opener.open(f1[4:]) == [1, "admin", {"a": 1}]
    bad = bytearray(f2[4:])
    bad[-1] ^= 1
    with pytest.raises(FrameError):
        opener.open(bytes(bad))
    # A replayed frame fails too: the nonce counter has moved on.
    with pytest.raises(FrameError):
        Opener(k).open(f2[4:])
