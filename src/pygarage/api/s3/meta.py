"""Which request headers an object keeps, and the response headers they become."""

from __future__ import annotations

from collections.abc import Mapping

from ..common import errors

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
        if name == "content-encoding":
            # aws-chunked is a transfer detail, not the object's encoding.
            parts = [p.strip() for p in v.split(",") if p.strip() and p.strip() != "aws-chunked"]
            if not parts:
                continue
            v = ",".join(parts)
        out.append((name, v))
    meta_size = 0
    for name, v in items:
        ln = name.lower()
        if ln.startswith("x-amz-meta-"):
            out.append((ln, v))
            meta_size += len(ln) - 11 + len(v.encode())
    if meta_size > MAX_META_BYTES:
        raise MetadataTooLarge()
    redirect = h.get("x-amz-website-redirect-location")
    if redirect is not None:
        if not redirect.startswith(("/", "http://", "https://")):
            raise errors.InvalidArgument("x-amz-website-redirect-location must start with "
                                         "'/', 'http://' or 'https://'")
        out.append(("x-amz-website-redirect-location", redirect))
    return out


def response_headers(stored: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for name, v in stored:
        if name in seen:  # repeated x-amz-meta-* are joined, as S3 does
            i = seen[name]
            out[i] = (name, out[i][1] + "," + v)
        else:
            seen[name] = len(out)
            out.append((name, v))
    if "content-type" not in seen:
        out.append(("content-type", "binary/octet-stream"))
    return out
