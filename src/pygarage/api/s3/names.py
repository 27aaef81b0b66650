"""Validation of bucket names and object keys (pure, no I/O)."""

from __future__ import annotations

import re

from pygarage.api.common import errors

MAX_KEY_BYTES = 1024

# Lowercase letters, digits, dots and hyphens; must start and end with a letter or digit.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", re.ASCII)
# Anything shaped like a dotted quad is refused, even out-of-range numbers: such names
# would be mistaken for addresses in virtual-host style URLs.
_IPV4_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", re.ASCII)
# Suffixes AWS reserves for access-point aliases; refusing them keeps names portable.
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3")


def check_bucket_name(name: str, allow_punycode: bool = False) -> None:
    """Raise InvalidBucketName unless `name` follows the S3 bucket naming rules."""
    if not 3 <= len(name) <= 63:
        raise errors.InvalidBucketName("Bucket name must be between 3 and 63 characters long.")
    if not _BUCKET_RE.fullmatch(name):
        raise errors.InvalidBucketName(
            "Bucket name must consist of lowercase letters, digits, dots and hyphens, "
            "and begin and end with a letter or digit.")
    if ".." in name:
        raise errors.InvalidBucketName("Bucket name must not contain two adjacent periods.")
    if _IPV4_RE.fullmatch(name):
        raise errors.InvalidBucketName("Bucket name must not be formatted as an IP address.")
    if name.startswith("xn--") and not allow_punycode:
        raise errors.InvalidBucketName("Bucket name must not start with 'xn--'.")
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            raise errors.InvalidBucketName(f"Bucket name must not end with '{suffix}'.")


def check_object_key(key: str) -> None:
    """Raise unless `key` is an acceptable object key.

    Keys are opaque data (never used as filesystem paths), so '..' segments are fine.
    """
    if not key:
        raise errors.InvalidArgument("Object key must not be empty.")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. from lenient URL decoding) cannot be stored as UTF-8.
        raise errors.InvalidArgument("Object key contains invalid characters") from None
    if len(raw) > MAX_KEY_BYTES:
        raise errors.KeyTooLongError(
            f"Your key is too long: {len(raw)} bytes, maximum is {MAX_KEY_BYTES}.")
    if "\x00" in key:
        raise errors.InvalidArgument("Object key contains invalid characters")
