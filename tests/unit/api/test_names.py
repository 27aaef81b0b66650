"""Tests for bucket name and object key validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pygarage.api.common import errors
from pygarage.api.s3.names import check_bucket_name, check_object_key


@pytest.mark.parametrize("name", [
    "abc", "my-bucket", "my.bucket.name", "a1b", "123", "0-0", "a" * 63, "bucket-2024",
    "1.2.3", "1.2.3.4.5", "a.1.2.3", "docexamplebucket1", "s3alias", "my-s3alias-x",
])
def test_valid_bucket_names(name: str) -> None:
    check_bucket_name(name)


@pytest.mark.parametrize("name", [
    "", "ab", "a" * 64, "My-Bucket", "my_bucket", "-abc", "abc-", ".abc", "abc.", "a..b",
    "192.168.5.4", "1.2.3.4", "999.1.1.1", "xn--abc", "bucket-s3alias", "bucket--ol-s3",
    "my bucket", "bücket", "abc/", "a\x00c", "ａbc",
])
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(errors.InvalidBucketName) as ei:
        check_bucket_name(name)
    assert ei.value.status == 400 and ei.value.code == "InvalidBucketName"


def test_punycode_allowed_on_request() -> None:
    check_bucket_name("xn--bcher-kva", allow_punycode=True)
    with pytest.raises(errors.InvalidBucketName):
        check_bucket_name("xn--bcher-kva")


@given(st.text(max_size=70))
def test_bucket_name_fuzz(name: str) -> None:
    try:
        check_bucket_name(name)
    except errors.InvalidBucketName:
        return
    assert 3 <= len(name) <= 63 and name.isascii() and name == name.lower()


@pytest.mark.parametrize("key", [
    "a", "../x", "a/../../b", "/leading", "trailing/", " spaced ", "é\U0001f600",
    "a" * 1024, "é" * 512, "\x01ctrl\x7f", "a//b", ".", "..",
])
def test_valid_keys(key: str) -> None:
    check_object_key(key)


def test_empty_key() -> None:
    with pytest.raises(errors.InvalidArgument):
        check_object_key("")


@pytest.mark.parametrize("key", ["a" * 1025, "é" * 513, "\U0001f600" * 257])
def test_key_too_long(key: str) -> None:
    with pytest.raises(errors.KeyTooLongError):
        check_object_key(key)


@pytest.mark.parametrize("key", ["a\x00b", "\x00", "a\ud800"])
def test_invalid_chars(key: str) -> None:
    with pytest.raises(errors.InvalidArgument) as ei:
        check_object_key(key)
    assert ei.value.message == "Object key contains invalid characters"
