"""PostObject policy evaluation and form signature (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pygarage.api.common import errors
from pygarage.api.common.signature.sigv4 import signing_key
from pygarage.api.s3 import post_policy as pp

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def pol(conditions: list[Any], expiration: str = "2030-01-02T00:00:00.000Z") -> pp.Policy:
    doc = {"expiration": expiration, "conditions": conditions}
    return pp.decode_policy(base64.b64encode(json.dumps(doc).encode()).decode())


def code(e: pytest.ExceptionInfo[errors.S3Error]) -> tuple[int, str, str]:
    return e.value.status, e.value.code, e.value.message


def test_conditions_hold() -> None:
    p = pol([{"bucket": "b"}, ["starts-with", "$key", "user/"], {"acl": "private"},
             ["eq", "$X-Amz-Meta-Tag", "v"], ["starts-with", "$Content-Type", "image/"],
             ["content-length-range", 1, 100], ["starts-with", "$x-amz-meta-any", ""]])
    fields = {"key": "user/${filename}", "acl": "private", "x-amz-meta-tag": "v",
              "content-type": "image/png, image/jpeg", "x-amz-meta-any": "",
              "policy": "...", "x-amz-signature": "...", "x-ignore-me": "1"}
    pp.check_policy(p, fields, "b", "user/a.png", NOW)
    assert p.length_range == (1, 100)


@pytest.mark.parametrize(("conds", "fields", "bucket", "key", "msg"), [
    ([{"bucket": "b"}], {}, "c", "k", "Policy Condition failed"),
    ([["starts-with", "$key", "user/"]], {"key": "x"}, "b", "other/x", "Condition failed"),
    ([["eq", "$acl", "private"]], {"acl": "public-read"}, "b", "k", "Condition failed"),
    ([["eq", "$acl", "private"]], {}, "b", "k", "Condition failed"),  # absent field
    ([], {"x-amz-meta-a": "1"}, "b", "k", "Extra input fields: x-amz-meta-a"),
    ([["starts-with", "$content-type", "image/"]], {"content-type": "image/png,text/html"},
     "b", "k", "Condition failed"),
    ([{"KEY": "Exact"}], {"key": "exact"}, "b", "exact", "Condition failed"),  # values: case
])
def test_conditions_fail(conds: list[Any], fields: dict[str, str], bucket: str, key: str,
                         msg: str) -> None:
    with pytest.raises(errors.S3Error) as e:
        pp.check_policy(pol(conds), fields, bucket, key, NOW)
    status, c, message = code(e)
    assert (status, c) == (403, "AccessDenied") and msg in message
    assert message.startswith("Invalid according to Policy: ")


def test_expiration() -> None:
    p = pol([], expiration="2030-01-01T00:00:00Z")
    with pytest.raises(errors.S3Error) as e:
        pp.check_policy(p, {}, "b", "k", NOW)
    assert code(e) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    pp.check_policy(pol([], expiration="2030-01-01T00:00:01+00:00"), {}, "b", "k", NOW)


@pytest.mark.parametrize("raw", [
    "!!", base64.b64encode(b"\xff").decode(), base64.b64encode(b"[]").decode(),
    base64.b64encode(b'{"conditions": []}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01"}').decode(),
    base64.b64encode(b'{"expiration": "x", "conditions": []}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [["eq", 1, "a"]]}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [["eq", "$a", 5]]}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [{"a": 1}]}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [["content-length-range",'
                     b' true, 5]]}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [["content-length-range",'
                     b' 1]]}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [42]}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [[]]}').decode(),
    # Not JSON as the RFC has it (Python's json takes these), and nesting past the parser.
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [["eq", "$a", NaN]]}').decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": [["eq", "$a", "\\ud800"]]}'
                     ).decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": ' + b"[" * 100_000
                     + b"]" * 100_000 + b"}").decode(),
    base64.b64encode(b'{"expiration": "2030-01-01", "conditions": []}\xff').decode(),
])
def test_invalid_documents(raw: str) -> None:
    with pytest.raises(errors.S3Error) as e:
        pp.decode_policy(raw)
    assert (e.value.status, e.value.code) == (400, "InvalidPolicyDocument")


def test_length_ranges() -> None:
    p = pol([["content-length-range", 10, 100], ["content-length-range", "20", 50]])
    assert p.length_range == (20, 50)
    pp.check_length(p, 5, final=False)  # still arriving
    for size, final, c in ((51, False, "EntityTooLarge"), (19, True, "EntityTooSmall")):
        with pytest.raises(errors.S3Error) as e:
            pp.check_length(p, size, final)
        assert (e.value.status, e.value.code) == (400, c)
    pp.check_length(p, 20, final=True)
    pp.check_length(pol([]), 10**12, final=True)


def _signed(secret: str, policy: str = "cG9saWN5") -> dict[str, str]:
    key = signing_key(secret, "20300101", "garage", "s3")
    sig = hmac.new(key, policy.encode(), hashlib.sha256).hexdigest()
    return {"policy": policy, "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": "GKtest/20300101/garage/s3/aws4_request",
            "x-amz-date": "20300101T000000Z", "x-amz-signature": sig}


def test_form_signature() -> None:
    def lookup(k: str) -> str | None:
        return "secret" if k == "GKtest" else None
    fields = _signed("secret")
    assert pp.verify_form_signature(fields, ("garage",), lookup).key_id == "GKtest"
    bad: list[tuple[dict[str, str], str]] = [
        ({**fields, "x-amz-signature": "0" * 64}, "SignatureDoesNotMatch"),
        ({**fields, "policy": "cG9saWN6"}, "SignatureDoesNotMatch"),
        (_signed("other"), "SignatureDoesNotMatch"),
        ({**fields, "x-amz-credential": "GKnone/20300101/garage/s3/aws4_request"},
         "InvalidAccessKeyId"),
        ({**fields, "x-amz-credential": "GKtest/20300101/mars/s3/aws4_request"},
         "AuthorizationHeaderMalformed"),
        ({**fields, "x-amz-date": "20300102T000000Z"}, "InvalidArgument"),
        ({**fields, "x-amz-algorithm": "AWS4-HMAC-SHA1"}, "InvalidArgument"),
        ({k: v for k, v in fields.items() if k != "x-amz-date"}, "InvalidArgument"),
        ({**fields, "x-amz-date": "garbage"}, "AccessDenied"),
        ({**fields, "x-amz-signature": "é" * 64}, "SignatureDoesNotMatch"),
    ]
    for f, c in bad:
        with pytest.raises(errors.S3Error) as e:
            pp.verify_form_signature(f, ("garage",), lookup)
        assert e.value.code == c, f
