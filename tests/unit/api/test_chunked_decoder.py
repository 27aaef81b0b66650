"""aws-chunked decoding: AWS's published examples, every split point, and broken bodies."""

from __future__ import annotations

import hashlib
import io
import random
from datetime import UTC, datetime

import pytest
from botocore import httpchecksum

from pygarage.api.common import errors
from pygarage.api.common.signature.checksum import Checksummer
from pygarage.api.common.signature.chunked import AwsChunkedDecoder
from pygarage.api.common.signature.sigv4 import (
    EMPTY_SHA256,
    SignedRequest,
    SigningContext,
    sign,
    signing_key,
    verify_request,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AUTH_PREFIX = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
               "aws4_request, SignedHeaders=")
PAYLOAD = b"a" * 66560


def _context(sha: str, extra: list[tuple[str, str]], signed: str, seed: str) -> SigningContext:
    """Run the documented request through verify_request to get its signing context."""
    headers = [("Host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
               ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", sha),
               ("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"),
               *extra, ("Authorization", f"{AUTH_PREFIX}{signed}, Signature={seed}")]
    result = verify_request(SignedRequest("PUT", "/examplebucket/chunkObject.txt", "", headers),
                            lookup_secret=lambda k: SECRET, region="us-east-1",
                            now=datetime(2013, 5, 24, tzinfo=UTC))
    assert result is not None
    return result.context


# "Transferring Payload in Multiple Chunks": 64 KiB + 1 KiB + final empty chunk.
CTX = _context("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", [("Content-Length", "66824")],
               "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
               "x-amz-decoded-content-length;x-amz-storage-class",
               "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
SIGS = ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]
BODY = (f"10000;chunk-signature={SIGS[0]}\r\n".encode() + PAYLOAD[:65536] + b"\r\n"
        + f"400;chunk-signature={SIGS[1]}\r\n".encode() + PAYLOAD[65536:] + b"\r\n"
        + f"0;chunk-signature={SIGS[2]}\r\n\r\n".encode())

# "Including Trailing Headers": same object, CRC32C trailer signed at the end.
TRAILER_CTX = _context("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                       [("x-amz-trailer", "x-amz-checksum-crc32c")],
                       "content-encoding;host;x-amz-content-sha256;x-amz-date;"
                       "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
                       "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e")
TSIGS = ["b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
         "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
         "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"]
TRAILER_SIG = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
TRAILER_BODY = (f"10000;chunk-signature={TSIGS[0]}\r\n".encode() + PAYLOAD[:65536] + b"\r\n"
                + f"400;chunk-signature={TSIGS[1]}\r\n".encode() + PAYLOAD[65536:] + b"\r\n"
                + f"0;chunk-signature={TSIGS[2]}\r\n".encode()
                + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
                + f"x-amz-trailer-signature:{TRAILER_SIG}\r\n\r\n".encode())


def signed_decoder() -> AwsChunkedDecoder:
    return AwsChunkedDecoder(context=CTX, signed=True, expect_trailer=None)


def trailer_decoder() -> AwsChunkedDecoder:
    return AwsChunkedDecoder(context=TRAILER_CTX, signed=True,
                             expect_trailer="x-amz-checksum-crc32c")


def decode(decoder: AwsChunkedDecoder, *pieces: bytes) -> tuple[bytes, dict[str, str]]:
    out = b"".join(b"".join(decoder.feed(p)) for p in pieces)
    return out, decoder.finish()


def test_example_content_length_matches_documentation() -> None:
    assert len(BODY) == 66824


def test_signed_example_whole() -> None:
    dec = signed_decoder()
    pieces = dec.feed(BODY)
    assert [len(p) for p in pieces] == [65536, 1024]
    assert dec.finish() == {}
    assert dec.decoded_length == 66560


@pytest.mark.parametrize(("make", "body", "trailers"), [
    (signed_decoder, BODY, {}),
    (trailer_decoder, TRAILER_BODY, {"x-amz-checksum-crc32c": "sOO8/Q=="}),
], ids=["chunked", "trailer"])
def test_every_split_offset(make, body: bytes, trailers: dict[str, str]) -> None:
    for cut in range(len(body) + 1):
        dec = make()
        assert decode(dec, body[:cut], body[cut:]) == (PAYLOAD, trailers), cut
        assert dec.decoded_length == len(PAYLOAD)


@pytest.mark.parametrize(("make", "body"), [(signed_decoder, BODY),
                                            (trailer_decoder, TRAILER_BODY)],
                         ids=["chunked", "trailer"])
def test_byte_by_byte(make, body: bytes) -> None:
    dec = make()
    out = bytearray()
    header = len(body.split(b"\r\n", 1)[0]) + 2
    for i in range(len(body)):
        for piece in dec.feed(body[i:i + 1]):
            out += piece
        # Data is streamed as it arrives, never held until its chunk ends.
        if header <= i < header + 65536:
            assert len(out) == i + 1 - header
    assert bytes(out) == PAYLOAD
    assert dec.finish() == ({"x-amz-checksum-crc32c": "sOO8/Q=="} if body is TRAILER_BODY
                            else {})


def test_trailer_example_with_blank_line_before_trailers() -> None:
    # Some implementations end the empty chunk with its own CRLF before the trailers.
    marker = f"0;chunk-signature={TSIGS[2]}\r\n".encode()
    body = TRAILER_BODY.replace(marker, marker + b"\r\n")
    assert decode(trailer_decoder(), body)[1] == {"x-amz-checksum-crc32c": "sOO8/Q=="}


def test_trailer_without_final_crlf_is_tolerated() -> None:
    assert decode(trailer_decoder(), TRAILER_BODY[:-2])[0] == PAYLOAD
    assert decode(trailer_decoder(), TRAILER_BODY[:-4])[0] == PAYLOAD


def test_forged_chunk_signature_mid_stream() -> None:
    forged = BODY.replace(SIGS[1].encode(), b"0" * 64)
    dec = signed_decoder()
    first = dec.feed(forged[:66000])  # first chunk complete and genuine, second begun
    assert b"".join(first).startswith(PAYLOAD[:65536])
    # The forged chunk fails at its end, before the body can be finished: nothing built on
    # the unverified data can be committed.
    with pytest.raises(errors.SignatureDoesNotMatch):
        dec.feed(forged[66000:])
    assert not dec.done


def test_large_signed_chunk_is_streamed_not_held() -> None:
    """A 48 MiB chunk: each feed() gives its data back at once (memory bounded by the feed,
    not by the chunk), and the signature is still checked at the chunk's end."""
    size = 48 * 1024 * 1024
    data = b"z" * size
    to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", CTX.amz_date, CTX.scope, CTX.seed_signature,
                         EMPTY_SHA256, hashlib.sha256(data).hexdigest()])
    sig = sign(CTX.signing_key, to_sign)
    for forge in (False, True):
        dec = signed_decoder()
        out = dec.feed(f"{size:x};chunk-signature={'0' * 64 if forge else sig}\r\n".encode())
        assert out == []
        step = 1024 * 1024
        for off in range(0, size, step):
            assert dec.feed(data[off:off + step]) == [data[off:off + step]]
        if forge:
            with pytest.raises(errors.SignatureDoesNotMatch):
                dec.feed(b"\r\n")
        else:
            assert dec.feed(b"\r\n") == []
            assert dec.decoded_length == size


def test_tampered_data_and_swapped_chunks_rejected() -> None:
    tampered = bytearray(BODY)
    tampered[-200] = ord("b")
    with pytest.raises(errors.SignatureDoesNotMatch):
        signed_decoder().feed(bytes(tampered))
    with pytest.raises(errors.SignatureDoesNotMatch):
        trailer_decoder().feed(BODY)  # right chunks, wrong seed


def test_forged_trailer_rejected() -> None:
    with pytest.raises(errors.SignatureDoesNotMatch):
        decode(trailer_decoder(), TRAILER_BODY.replace(b"sOO8/Q==", b"AAAAAA=="))
    with pytest.raises(errors.SignatureDoesNotMatch):
        decode(trailer_decoder(), TRAILER_BODY.replace(TRAILER_SIG.encode(), b"1" * 64))
    no_sig = TRAILER_BODY.split(b"x-amz-trailer-signature")[0] + b"\r\n"
    with pytest.raises(errors.SignatureDoesNotMatch):
        decode(trailer_decoder(), no_sig)


@pytest.mark.parametrize(("make", "body"), [(signed_decoder, BODY),
                                            (trailer_decoder, TRAILER_BODY)],
                         ids=["chunked", "trailer"])
def test_every_truncation_fails(make, body: bytes) -> None:
    # Cutting the body anywhere must fail (at finish at the latest), except right after a
    # complete trailer signature line, where the final CRLFs are optional.
    tolerated = set(range(len(body) - 4, len(body))) if body is TRAILER_BODY else set()
    for cut in range(len(body)):
        if cut in tolerated:
            continue
        dec = make()
        with pytest.raises(errors.S3Error):
            dec.feed(body[:cut])
            dec.finish()


# ------------------------------------------------------------------ self-made bodies

def encode_signed(ctx: SigningContext, chunks: list[bytes], trailers: dict[str, str]) -> bytes:
    out, previous = bytearray(), ctx.seed_signature
    for data in [*chunks, b""]:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", ctx.amz_date, ctx.scope, previous,
                             EMPTY_SHA256, hashlib.sha256(data).hexdigest()])
        previous = sign(ctx.signing_key, to_sign)
        out += f"{len(data):x};chunk-signature={previous}\r\n".encode() + data
        out += b"\r\n" if data or not trailers else b""
    if trailers:
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items()))
        to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", ctx.amz_date, ctx.scope, previous,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        out += canonical.replace("\n", "\r\n").encode()
        out += f"x-amz-trailer-signature:{sign(ctx.signing_key, to_sign)}\r\n\r\n".encode()
    return bytes(out)


SMALL_CTX = SigningContext(key_id="GK1", signing_key=signing_key("s", "20240101", "garage", "s3"),
                           scope="20240101/garage/s3/aws4_request", amz_date="20240101T000000Z",
                           seed_signature="ab" * 32)


@pytest.mark.parametrize("trailers", [{}, {"x-amz-checksum-sha256": "x" * 44}])
def test_small_signed_body_every_split(trailers: dict[str, str]) -> None:
    chunks = [b"hello ", b"", b"world\r\n0\r\n"][::2] + [bytes(range(256))]
    body = encode_signed(SMALL_CTX, chunks, trailers)
    expect = "x-amz-checksum-sha256" if trailers else None
    for cut in range(len(body) + 1):
        for cut2 in range(cut, len(body) + 1, 7):
            dec = AwsChunkedDecoder(context=SMALL_CTX, signed=True, expect_trailer=expect)
            assert decode(dec, body[:cut], body[cut:cut2], body[cut2:]) \
                == (b"".join(chunks), trailers)


@pytest.mark.parametrize("algo", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
@pytest.mark.parametrize("seed", range(4))
def test_unsigned_trailer_against_botocore_wrapper(algo: str, seed: int) -> None:
    rng = random.Random(seed)
    payload = rng.randbytes(rng.choice([0, 1, 100, 5000]))
    cls = httpchecksum._CHECKSUM_CLS[algo]  # type: ignore[attr-defined]
    name = f"x-amz-checksum-{algo}"
    body = httpchecksum.AwsChunkedWrapper(io.BytesIO(payload), checksum_cls=cls,
                                          checksum_name=name,
                                          chunk_size=rng.randint(1, 2000)).read()
    for cut in range(0, len(body) + 1, max(1, len(body) // 50)):
        dec = AwsChunkedDecoder(context=None, signed=False, expect_trailer=name)
        out, trailers = decode(dec, body[:cut], body[cut:])
        assert out == payload
        summer = Checksummer([algo], md5=False)
        summer.update(out)
        assert trailers == {name: summer.result().extra[algo]}


def test_unsigned_streams_partial_chunks_and_ignores_extensions() -> None:
    dec = AwsChunkedDecoder(context=None, signed=False, expect_trailer=None)
    assert dec.feed(b"a;chunk-signature=" + b"f" * 64 + b"\r\n01234") == [b"01234"]
    assert dec.feed(b"56789\r\n0\r\n\r\n") == [b"56789"]
    assert dec.finish() == {}
    assert dec.decoded_length == 10


@pytest.mark.parametrize("body", [
    b"zz\r\nab\r\n0\r\n\r\n",  # bad hex size
    b"3\r\nabcXY0\r\n\r\n",  # missing CRLF after data
    b"3\r\nabc\r\n0\r\n\r\n\r\n",  # data after the end
    b"4000001\r\n",  # chunk larger than 64 MiB
    b"1" * 5000,  # no line end in sight
    b"-1\r\n",
    b"3\r\nabc\r\n0\r\nno-colon-here\r\n\r\n",
])
def test_malformed_unsigned_bodies(body: bytes) -> None:
    dec = AwsChunkedDecoder(context=None, signed=False, expect_trailer=None)
    with pytest.raises((errors.InvalidRequest, errors.IncompleteBody)):
        dec.feed(body)
        dec.finish()


def test_unsigned_truncations_and_missing_trailer() -> None:
    body = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    for cut in range(len(body) - 2):
        dec = AwsChunkedDecoder(context=None, signed=False, expect_trailer="x-amz-checksum-crc32")
        with pytest.raises((errors.IncompleteBody, errors.InvalidRequest)):
            dec.feed(body[:cut])
            dec.finish()
    dec = AwsChunkedDecoder(context=None, signed=False, expect_trailer="x-amz-checksum-crc32c")
    with pytest.raises(errors.InvalidRequest, match="crc32c"):
        decode(dec, body)


def test_signed_chunk_without_signature_and_after_done() -> None:
    dec = AwsChunkedDecoder(context=SMALL_CTX, signed=True, expect_trailer=None)
    with pytest.raises(errors.InvalidRequest):
        dec.feed(b"3\r\nabc\r\n")
    dec = AwsChunkedDecoder(context=SMALL_CTX, signed=True, expect_trailer=None)
    body = encode_signed(SMALL_CTX, [b"abc"], {"x-amz-checksum-crc32": "AAAAAA=="})
    dec.feed(body)
    assert dec.done
    with pytest.raises(errors.InvalidRequest):
        dec.feed(b"x")
    with pytest.raises(ValueError):
        AwsChunkedDecoder(context=None, signed=True, expect_trailer=None)
