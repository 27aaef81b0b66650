"""Helpers for hand-made S3 requests: signed with botocore's SigV4 signer (any payload hash,
any date, any region), aws-chunked bodies built by hand, raw sockets for broken bodies."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.auth import SIGV4_TIMESTAMP, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from pygarage.testing.node import GarageNode

REGION = "garage"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def find_text(root: ET.Element, name: str) -> str | None:
    """Text of the first descendant element called `name` (namespace ignored)."""
    for el in root.iter():
        if local(el.tag) == name:
            return el.text or ""
    return None


def find_all(root: ET.Element, name: str) -> list[ET.Element]:
    return [el for el in root.iter() if local(el.tag) == name]


@dataclass
class Resp:
    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def code(self) -> str | None:
        if not self.body:
            return None
        return find_text(self.xml(), "Code")

    def text(self, name: str) -> str | None:
        return find_text(self.xml(), name)


class _FixedSigner(S3SigV4Auth):
    """botocore's S3 SigV4 signer with a chosen payload hash and a chosen signing time."""

    def __init__(self, creds: Credentials, region: str, payload_hash: str, when: datetime):
        super().__init__(creds, "s3", region)
        self._payload_hash = payload_hash
        self._when = when

    def payload(self, request: Any) -> str:
        return self._payload_hash

    def add_auth(self, request: Any) -> None:
        request.context["timestamp"] = self._when.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical)
        signature = self.signature(string_to_sign, request)
        self._inject_signature_to_request(request, signature)


def signing_key(secret: str, date8: str, region: str = REGION) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date8, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@dataclass
class Signed:
    headers: dict[str, str]
    amz_date: str
    scope: str
    seed_signature: str
    key: bytes


class RawClient:
    """Requests built by hand: path and query are sent exactly as given (already encoded)."""

    def __init__(self, node: GarageNode, creds: tuple[str, str]):
        self.node = node
        self.creds = creds
        self.host = f"127.0.0.1:{node.s3_port}"

    def sign(self, method: str, path: str, query: str = "",
             headers: dict[str, str] | None = None, payload_hash: str | None = None,
             body: bytes = b"", when: datetime | None = None, region: str = REGION,
             creds: tuple[str, str] | None = None) -> Signed:
        ak, sk = creds or self.creds
        when = when or datetime.now(UTC)
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        url = f"http://{self.host}{path}" + (f"?{query}" if query else "")
        req = AWSRequest(method=method, url=url, headers=dict(headers or {}))
        req.headers["Host"] = self.host
        _FixedSigner(Credentials(ak, sk), region, payload_hash, when).add_auth(req)
        out = {k: v for k, v in req.headers.items()}
        auth = out["Authorization"]
        seed = auth.rsplit("Signature=", 1)[1]
        date8 = when.strftime("%Y%m%d")
        return Signed(out, out["X-Amz-Date"], f"{date8}/{region}/s3/aws4_request", seed,
                      signing_key(sk, date8, region))

    def request(self, method: str, path: str, query: str = "", *,
                headers: dict[str, str] | None = None, body: bytes = b"",
                payload_hash: str | None = None, sign: bool = True,
                when: datetime | None = None, region: str = REGION,
                creds: tuple[str, str] | None = None, timeout: float = 30) -> Resp:
        if sign:
            h = self.sign(method, path, query, headers, payload_hash, body, when, region,
                          creds).headers
        else:
            h = dict(headers or {})
            h["Host"] = self.host
        return self.send(method, path + (f"?{query}" if query else ""), h, body, timeout)

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes = b"",
             timeout: float = 30) -> Resp:
        conn = http.client.HTTPConnection("127.0.0.1", self.node.s3_port, timeout=timeout)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            has_len = any(k.lower() in ("content-length", "transfer-encoding") for k in headers)
            for k, v in headers.items():
                # UTF-8 on the wire, as SDKs send (and sign) non-ASCII header values.
                conn.putheader(k, v.encode())
            if not has_len and (body or method in ("PUT", "POST")):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            r = conn.getresponse()
            data = r.read()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def raw_socket(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.node.s3_port), timeout=10)


def head_lines(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_http_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response (Content-Length framed) from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed; got {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n]


# ------------------------------------------------------------------ aws-chunked bodies

def read_until_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    sock.close()
    return received


def chunk_sizes(total: int, chunk: int) -> list[int]:
    return [min(chunk, total - i) for i in range(0, total, chunk)]


def signed_chunked_length(data_len: int, chunk: int) -> int:
    """Wire length of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body (signatures are 64 hex)."""
    n = 0
    for size in [*chunk_sizes(data_len, chunk), 0]:
        n += len(f"{size:x};chunk-signature=") + 64 + 2 + size + 2
    return n


def signed_chunked_body(s: Signed, data: bytes, chunk: int, forge: int | None = None,
                        trailers: dict[str, str] | None = None,
                        forge_trailer: bool = False) -> bytes:
    """Chunks each signed over the previous signature; chunk number `forge` gets a wrong one.
    With `trailers`: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, the trailers signed too."""
    out = bytearray()
    prev = s.seed_signature
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for i, piece in enumerate(pieces):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", s.amz_date, s.scope, prev,
                             EMPTY_SHA256, hashlib.sha256(piece).hexdigest()])
        sig = hmac.new(s.key, to_sign.encode(), hashlib.sha256).hexdigest()
        prev = sig
        if i == forge:
            sig = _forged(sig)
        out += f"{len(piece):x};chunk-signature={sig}\r\n".encode() + piece
        out += b"\r\n" if piece or trailers is None else b""
    if trailers is not None:
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items()))
        to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", s.amz_date, s.scope, prev,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        sig = hmac.new(s.key, to_sign.encode(), hashlib.sha256).hexdigest()
        for k, v in trailers.items():
            out += f"{k}:{v}\r\n".encode()
        out += f"x-amz-trailer-signature:{_forged(sig) if forge_trailer else sig}\r\n\r\n"\
            .encode()
    return bytes(out)


def _forged(sig: str) -> str:
    return ("0" if sig[0] != "0" else "1") + sig[1:]


def signed_trailer_length(data_len: int, chunk: int, trailers: dict[str, str]) -> int:
    dummy = Signed({}, "20000101T000000Z", "20000101/garage/s3/aws4_request", "0" * 64, b"k")
    return len(signed_chunked_body(dummy, b"x" * data_len, chunk, trailers=trailers))


def unsigned_trailer_body(data: bytes, chunk: int, trailers: dict[str, str]) -> bytes:
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER wire format, as the AWS SDKs send it."""
    out = bytearray()
    for i in range(0, len(data), chunk):
        piece = data[i:i + chunk]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers.items():
        out += f"{k}:{v}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def assert_log_clean(node: Any, secrets: list[str]) -> None:
    """The server log has no Python traceback and never shows a secret."""
    text = node.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[text.find("Traceback") - 2000:][:6000]
    for s in secrets:
        assert s not in text, "a secret appears in the server log"


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """HEAD the object: True if it exists, False on 404 (any other error fails the test)."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        return False
