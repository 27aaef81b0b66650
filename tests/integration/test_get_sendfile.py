"""A whole GET of a multi-block object sends each local plain block file with sendfile once
its hash is checked (the block_bytes_sendfile metric counts those bytes): byte-exact, keep
alive, compressed blocks mixed in, a corrupt block never sent, no file left open. Ranges
and partNumber keep the general path and stay exact across block boundaries."""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from s3helpers import RawClient, read_until_close

from pygarage.testing.node import GarageNode
from pygarage.util.ids import block_hash

MiB = 1024 * 1024
BUCKET = "sendfile"


@pytest.fixture(scope="module")
def snode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarageNode]:
    n = GarageNode(tmp_path_factory.mktemp("sendfile"))  # 1 MiB blocks, zstd level 1
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def screds(snode: GarageNode) -> tuple[str, str]:
    creds = snode.create_key("sendfile")
    snode.create_bucket(BUCKET, creds[0])
    return creds


@pytest.fixture
def s3c(snode: GarageNode, screds: tuple[str, str]) -> Any:
    return snode.s3(*screds)


def _sent(node: GarageNode) -> int:
    """block_bytes_sendfile of the server."""
    with urllib.request.urlopen(f"http://127.0.0.1:{node.admin_port}/metrics",
                                timeout=10) as r:
        m = re.search(rb"^block_bytes_sendfile_total ([0-9.e+]+)$", r.read(), re.M)
    assert m is not None
    return int(float(m.group(1)))


def _block_files(node: GarageNode) -> dict[str, Path]:
    """hash hex -> block file."""
    return {p.name.removesuffix(".zst"): p for p in (node.root / "data").rglob("*")
            if p.is_file() and re.fullmatch(r"[0-9a-f]{64}(\.zst)?", p.name)}


def _get_raw(node: GarageNode, creds: tuple[str, str], key: str) -> tuple[bytes, bytes]:
    """(head, body) of a GET read until the server closes the connection."""
    signed = RawClient(node, creds).sign("GET", f"/{BUCKET}/{key}")
    sock = socket.create_connection(("127.0.0.1", node.s3_port), timeout=20)
    sock.sendall(f"GET /{BUCKET}/{key} HTTP/1.1\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in signed.headers.items())
        + b"Connection: close\r\n\r\n")
    head, _, body = read_until_close(sock).partition(b"\r\n\r\n")
    return head, body


def _block_fds(node: GarageNode) -> list[str]:
    """Files of the data dir the server process holds open."""
    assert node.proc is not None
    data = str((node.root / "data").resolve())
    out = []
    fd_dir = Path(f"/proc/{node.proc.pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith(data):
            out.append(target)
    return out


def test_large_object_sent_by_sendfile_byte_exact(snode: GarageNode, s3c: Any) -> None:
    body = os.urandom(5 * MiB + 12345)  # random: 6 plain blocks
    s3c.put_object(Bucket=BUCKET, Key="big", Body=body)
    before = _sent(snode)
    r = s3c.get_object(Bucket=BUCKET, Key="big")
    assert r["ContentLength"] == len(body)
    assert r["Body"].read() == body
    assert _sent(snode) - before == len(body)  # every block went out by sendfile


def test_keep_alive_after_sendfile(snode: GarageNode, screds: tuple[str, str],
                                   s3c: Any) -> None:
    """Two GETs, then a small one, on one connection: the body length is exact, so the
    connection stays usable."""
    body = os.urandom(3 * MiB + 1)
    s3c.put_object(Bucket=BUCKET, Key="ka", Body=body)
    s3c.put_object(Bucket=BUCKET, Key="small", Body=b"tiny")
    rc = RawClient(snode, screds)
    sock = socket.create_connection(("127.0.0.1", snode.s3_port), timeout=20)
    with sock:
        for key, want in (("ka", body), ("ka", body), ("small", b"tiny")):
            signed = rc.sign("GET", f"/{BUCKET}/{key}")
            sock.sendall(f"GET /{BUCKET}/{key} HTTP/1.1\r\n".encode() + b"".join(
                f"{k}: {v}\r\n".encode() for k, v in signed.headers.items()) + b"\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                assert chunk, "connection closed"
                buf += chunk
            head, _, got = buf.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert f"content-length: {len(want)}".encode() in head.lower()
            while len(got) < len(want):
                chunk = sock.recv(1 << 20)
                assert chunk, "connection closed"
                got += chunk
            assert got == want


def test_multipart_object_of_odd_part_sizes(snode: GarageNode, s3c: Any) -> None:
    parts = [os.urandom(5 * MiB + 7), os.urandom(5 * MiB + MiB // 2 + 3), os.urandom(MiB // 2)]
    up = s3c.create_multipart_upload(Bucket=BUCKET, Key="mpu")
    done = []
    for n, p in enumerate(parts, 1):
        r = s3c.upload_part(Bucket=BUCKET, Key="mpu", UploadId=up["UploadId"],
                            PartNumber=n, Body=p)
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    s3c.complete_multipart_upload(Bucket=BUCKET, Key="mpu", UploadId=up["UploadId"],
                                  MultipartUpload={"Parts": done})
    body = b"".join(parts)
    before = _sent(snode)
    assert s3c.get_object(Bucket=BUCKET, Key="mpu")["Body"].read() == body
    assert _sent(snode) - before == len(body)
    # partNumber: the general path, exact.
    before = _sent(snode)
    for n, p in enumerate(parts, 1):
        assert s3c.get_object(Bucket=BUCKET, Key="mpu", PartNumber=n)["Body"].read() == p
    assert _sent(snode) == before


def test_ranges_across_block_boundaries(snode: GarageNode, s3c: Any) -> None:
    body = os.urandom(4 * MiB + 333)
    s3c.put_object(Bucket=BUCKET, Key="ranges", Body=body)
    before = _sent(snode)
    for a, b in [(MiB - 10, MiB + 10), (0, 3 * MiB - 1), (MiB, 2 * MiB - 1),
                 (5, len(body) - 1), (2 * MiB - 1, 4 * MiB)]:
        r = s3c.get_object(Bucket=BUCKET, Key="ranges", Range=f"bytes={a}-{b}")
        assert r["Body"].read() == body[a:b + 1], (a, b)
    r = s3c.get_object(Bucket=BUCKET, Key="ranges", Range="bytes=-1500000")
    assert r["Body"].read() == body[-1500000:]
    assert _sent(snode) == before  # ranges keep the general path


def test_compressed_blocks_mixed_with_plain_ones(snode: GarageNode, s3c: Any) -> None:
    blocks = [bytes(MiB) if i % 2 == 0 else os.urandom(MiB) for i in range(5)]
    blocks.append(b"text " * 1000)
    body = b"".join(blocks)
    s3c.put_object(Bucket=BUCKET, Key="mixed", Body=body)
    files = _block_files(snode)
    kinds = {i: files[block_hash(b).hex()].name.endswith(".zst") for i, b in enumerate(blocks)}
    assert kinds == {0: True, 1: False, 2: True, 3: False, 4: True, 5: True}
    before = _sent(snode)
    assert s3c.get_object(Bucket=BUCKET, Key="mixed")["Body"].read() == body
    assert _sent(snode) - before == 2 * MiB  # the two plain blocks only


def test_corrupt_later_block_is_never_sent(snode: GarageNode, screds: tuple[str, str],
                                           s3c: Any) -> None:
    body = os.urandom(6 * MiB)
    s3c.put_object(Bucket=BUCKET, Key="rot", Body=body)
    victim = _block_files(snode)[block_hash(body[3 * MiB:4 * MiB]).hex()]
    raw = bytearray(victim.read_bytes())
    raw[MiB - 1] ^= 0x01  # its very last byte: a check of anything less would miss it
    victim.write_bytes(bytes(raw))
    log_start = snode.log_path.stat().st_size
    before = _sent(snode)
    head, got = _get_raw(snode, screds, "rot")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"content-length: {len(body)}".encode() in head.lower()
    # The three verified blocks before it, whole, and not one byte of the bad one.
    assert got == body[:3 * MiB]
    assert _sent(snode) - before == 3 * MiB
    assert Path(str(victim) + ".corrupted").exists() and not victim.exists()
    text = snode.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert "corrupted" in text and "connection cut after" in text
    assert "Traceback" not in text


def test_corrupt_first_block_is_a_clean_error(snode: GarageNode, s3c: Any) -> None:
    body = os.urandom(3 * MiB)
    s3c.put_object(Bucket=BUCKET, Key="rot-first", Body=body)
    victim = _block_files(snode)[block_hash(body[:MiB]).hex()]
    raw = bytearray(victim.read_bytes())
    raw[0] ^= 0x80
    victim.write_bytes(bytes(raw))
    before = _sent(snode)
    with pytest.raises(Exception) as e:
        s3c.get_object(Bucket=BUCKET, Key="rot-first")
    assert "ServiceUnavailable" in str(e.value) or "503" in str(e.value)
    assert _sent(snode) == before


def test_no_block_file_left_open(snode: GarageNode, screds: tuple[str, str],
                                 s3c: Any) -> None:
    """Clients that go away mid-body (read-ahead blocks verified and open at that moment)
    leave no open block file behind."""
    body = os.urandom(8 * MiB)
    s3c.put_object(Bucket=BUCKET, Key="leave", Body=body)
    rc = RawClient(snode, screds)
    for _ in range(12):
        signed = rc.sign("GET", f"/{BUCKET}/leave")
        sock = socket.create_connection(("127.0.0.1", snode.s3_port), timeout=20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(f"GET /{BUCKET}/leave HTTP/1.1\r\n".encode() + b"".join(
            f"{k}: {v}\r\n".encode() for k, v in signed.headers.items()) + b"\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.close()
    deadline = time.monotonic() + 10
    while (held := _block_fds(snode)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert held == []
    assert s3c.get_object(Bucket=BUCKET, Key="leave")["Body"].read() == body
    assert _block_fds(snode) == []
    assert "Traceback" not in snode.log_path.read_text(errors="replace")
