"""Secret handshake: vectors, mutual proof, forward secrecy, and clean failure on any
tampered, replayed, garbage or truncated message."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from nacl.signing import SigningKey

from pygarage.net import handshake as hs

K = bytes(range(32))
SKEY = SigningKey(b"\x01" * 32)
CKEY = SigningKey(b"\x02" * 32)
SPUB = bytes(SKEY.verify_key)


def _pair(secret_c: bytes = K, secret_s: bytes = K, expected: bytes | None = SPUB,
          ce: bytes | None = None, se: bytes | None = None
          ) -> tuple[hs.ClientHandshake, hs.ServerHandshake]:
    return (hs.ClientHandshake(secret_c, CKEY, expected, ephemeral=ce),
            hs.ServerHandshake(secret_s, SKEY, ephemeral=se))


def _messages() -> tuple[bytes, bytes, bytes]:
    c, s = _pair()
    m1 = c.start()
    m2 = s.receive(m1)
    m3 = c.receive(m2)
    assert s.receive(m3) == b""
    return m1, m2, m3


def test_vector_is_deterministic_given_keys_and_ephemerals() -> None:
    c, s = _pair(ce=b"\x03" * 32, se=b"\x04" * 32)
    m1 = c.start()
    m2 = s.receive(m1)
    m3 = c.receive(m2)
    assert s.receive(m3) == b""
    assert (len(m1), len(m2), len(m3)) == (hs.MSG1_LEN, hs.MSG2_LEN, hs.MSG3_LEN)
    assert hashlib.sha256(m1 + m2 + m3).hexdigest() == (
        "025bd50ed6bed4a108e4eefe30b5618d643cb1b1a58b1bc90333d5727247537c")
    assert c.session is not None and s.session is not None
    assert c.session.send_key.hex() == (
        "34810481ea2d7430b900bffe10e4f337f53d95d0b794944bb9b39d3f49fb4759")
    assert c.session.recv_key.hex() == (
        "a4ab73ab735a1b72caf8a30c5687235f8a2c21adc8e5d0f5a747e84e6b97eb2a")
    assert (s.session.send_key, s.session.recv_key) == (c.session.recv_key,
                                                        c.session.send_key)
    assert s.session.peer_pub == bytes(CKEY.verify_key)
    assert c.session.peer_pub == SPUB


def test_session_keys_come_from_ephemerals() -> None:
    """Forward secrecy: same secret and node keys, fresh ephemerals -> unrelated keys."""
    keys = set()
    for _ in range(3):
        c, s = _pair()
        s.receive(c.receive(s.receive(c.start())))
        assert c.session is not None
        keys.add(c.session.send_key)
    assert len(keys) == 3


def test_byte_by_byte_and_with_trailing_stream_bytes() -> None:
    c, s = _pair()
    m2 = b"".join(s.receive(bytes([b])) for b in c.start())
    m3 = b"".join(c.receive(bytes([b])) for b in m2)
    for b in m3 + b"tail":
        assert s.receive(bytes([b])) == b""
    assert s.done and s.rest() == b"tail"
    # Message 1 and 3 in one segment (the server's answer still comes out).
    c2, s2 = _pair(ce=b"\x05" * 32, se=b"\x06" * 32)
    m1 = c2.start()
    m2 = s2.receive(m1)
    m3 = c2.receive(m2)
    _, s3 = _pair(se=b"\x06" * 32)
    assert s3.receive(m1 + m3) == m2 and s3.done


def test_wrong_secret_client_gets_nothing() -> None:
    c, s = _pair(secret_c=secrets.token_bytes(32))
    with pytest.raises(hs.HandshakeError, match="rpc_secret"):
        s.receive(c.start())
    with pytest.raises(hs.HandshakeError):
        s.receive(b"more")


def test_client_rejects_server_without_secret() -> None:
    other = secrets.token_bytes(32)
    good, _ = _pair(ce=b"\x07" * 32)
    twin = hs.ClientHandshake(other, CKEY, None, ephemeral=b"\x07" * 32)
    m2 = hs.ServerHandshake(other, SKEY).receive(twin.start())
    with pytest.raises(hs.HandshakeError, match="rpc_secret"):
        good.receive(m2)


def test_wrong_expected_server_key() -> None:
    c, s = _pair(expected=bytes(SigningKey.generate().verify_key))
    with pytest.raises(hs.HandshakeError, match="expected"):
        c.receive(s.receive(c.start()))


@pytest.mark.parametrize("which", [0, 1, 2])
def test_tampered_at_every_byte_fails_cleanly(which: int) -> None:
    msgs = _messages()
    for i in range(len(msgs[which])):
        for bit in (0x01, 0x80):
            c, s = _pair()
            m1 = c.start()
            if which == 0:
                bad = bytearray(m1)
                bad[i] ^= bit
                with pytest.raises(hs.HandshakeError):
                    s.receive(bytes(bad))
                continue
            m2 = s.receive(m1)
            if which == 1:
                bad = bytearray(m2)
                bad[i] ^= bit
                with pytest.raises(hs.HandshakeError):
                    c.receive(bytes(bad))
                continue
            bad = bytearray(c.receive(m2))
            bad[i] ^= bit
            with pytest.raises(hs.HandshakeError):
                s.receive(bytes(bad))
            assert not s.done


def test_truncated_at_every_offset_waits_without_output() -> None:
    m1, m2, m3 = _messages()
    for i in range(len(m1)):
        _, s = _pair()
        assert s.receive(m1[:i]) == b"" and not s.done
    for i in range(len(m2)):
        c, _ = _pair()
        c.start()
        assert c.receive(m2[:i]) == b"" and not c.done
    for i in range(len(m3)):
        c, s = _pair()
        m3 = c.receive(s.receive(c.start()))
        assert s.receive(m3[:i]) == b"" and not s.done


def test_garbage_fails_cleanly() -> None:
    for n in (hs.MSG2_LEN, 4096):
        for _ in range(20):
            junk = secrets.token_bytes(n)
            _, s = _pair()
            with pytest.raises(hs.HandshakeError):
                s.receive(junk)
            c, _ = _pair()
            c.start()
            with pytest.raises(hs.HandshakeError):
                c.receive(junk)
    # A right prefix and a low-order (all-zero) ephemeral key.
    c, s = _pair()
    with pytest.raises(hs.HandshakeError):
        s.receive(hs.MAGIC + bytes(64))
    with pytest.raises(hs.HandshakeError, match="ephemeral"):
        c.receive(bytes(hs.MSG2_LEN))


def test_replayed_messages_fail() -> None:
    m1, m2, m3 = _messages()
    # Message 3 of an old session into a new session that replays the old message 1.
    _, s = _pair()
    s.receive(m1)
    with pytest.raises(hs.HandshakeError):
        s.receive(m3)
    # An old message 2 to a new client.
    c, _ = _pair()
    c.start()
    with pytest.raises(hs.HandshakeError):
        c.receive(m2)
