"""Which request headers an object keeps, and the response headers they become."""

from __future__ import annotations

from collections.abc import Mapping

from ..common import errors
from ..common.wire import check_header_value

_STANDARD = ("content-type", "cache-control", "content-disposition", "content-encoding",
             "content-language", "expires")
MAX_META_BYTES = 2 * 1024  # AWS's limit on user metadata


class MetadataTooLarge(errors.S3Error):
    status, code = 400, "MetadataTooLarge"
    default_message = "Your metadata headers exceed the maximum allowed metadata size."


def headers_to_store(h: Mapping[str, str], items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """items: all request headers (name, value) in order, to keep repeated x-amz-meta-*."""
    out: list[tuple[str, str]] = []
    for name in _STANDARD:
        v = h.get(name)
        if v is None:
            continue
        check_header_value(v, name)
        if name == "content-encoding":
            v = strip_aws_chunked(v)
            if not v:
                continue
        out.append((name, v))
    meta_size = 0
    for name, v in items:
        ln = name.lower()
        if ln.startswith("x-amz-meta-"):
            # Stored and sent back exactly as received: the bytes of 'é' in UTF-8, or an
            # RFC 2047 word, round-trip unchanged.
            out.append((ln, check_header_value(v, ln)))
            meta_size += len(ln) - 11 + len(v.encode())
    if meta_size > MAX_META_BYTES:
        raise MetadataTooLarge()
    redirect = h.get("x-amz-website-redirect-location")
    if redirect is not None:
        check_header_value(redirect, "x-amz-website-redirect-location")
        if not redirect.startswith(("/", "http://", "https://")):
            raise errors.InvalidArgument("x-amz-website-redirect-location must start with "
                                         "'/', 'http://' or 'https://'")
        out.append(("x-amz-website-redirect-location", redirect))
    return out


def strip_aws_chunked(value: str) -> str:
    """Content-Encoding without its aws-chunked token (a transfer detail, not the object's
    encoding); the other codings keep the client's own spelling: 'aws-chunked, deflate, gzip'
    -> 'deflate, gzip'."""
    tokens = value.split(",")
    kept = [t for t in tokens if t.strip(" \t").lower() != "aws-chunked"]
    if len(kept) == len(tokens):
        return value
    return ",".join(kept).strip(" \t")


def response_headers(stored: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for name, v in stored:
        if name.startswith("x-pygarage-"):  # internal (SSE-C's key check): never sent
            continue
        if name in seen:  # repeated x-amz-meta-* are joined, as S3 does
            i = seen[name]
            out[i] = (name, out[i][1] + "," + v)
        else:
            seen[name] = len(out)
            out.append((name, v))
    if "content-type" not in seen:
        out.append(("content-type", "binary/octet-stream"))
    return out
