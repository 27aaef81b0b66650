"""verify_request's rejections: each failure mode maps to the S3 error a client expects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from pygarage.api.common import errors
from pygarage.api.common.signature.sigv4 import (
    EMPTY_SHA256,
    SignedRequest,
    canonical_query_string,
    canonical_request,
    sign,
    signing_key,
    string_to_sign,
    verify_request,
)

KEY, SECRET, REGION = "GK0123456789abcdef", "s3cr3t/+key", "garage"
NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
DATE = NOW.strftime("%Y%m%dT%H%M%SZ")
SCOPE = f"{NOW:%Y%m%d}/{REGION}/s3/aws4_request"


def lookup(key_id: str) -> str | None:
    return SECRET if key_id == KEY else None


def header_signed(method: str = "GET", path: str = "/bucket/key", query: str = "",
                  extra: list[tuple[str, str]] | None = None, *, signed: list[str] | None = None,
                  date: str = DATE, scope: str = SCOPE, sha: str = EMPTY_SHA256,
                  sep: str = ", ") -> SignedRequest:
    headers = [("Host", "localhost:3900"), ("x-amz-date", date),
               ("x-amz-content-sha256", sha), *(extra or [])]
    names = signed or sorted({n.lower() for n, _ in headers})
    canonical = canonical_request(method, path, canonical_query_string(query), headers, names,
                                  sha)
    date8, region, service, _ = scope.split("/")
    sig = sign(signing_key(SECRET, date8, region, service), string_to_sign(date, scope, canonical))
    auth = (f"AWS4-HMAC-SHA256 Credential={KEY}/{scope}{sep}SignedHeaders={';'.join(names)}"
            f"{sep}Signature={sig}")
    return SignedRequest(method, path, query, [*headers, ("Authorization", auth)])


def presigned(path: str = "/bucket/key", *, date: str = DATE, expires: str = "3600",
              extra_query: str = "", region: str = REGION) -> SignedRequest:
    scope = f"{date[:8]}/{region}/s3/aws4_request"
    cred = f"{KEY}/{scope}".replace("/", "%2F")
    query = (f"{extra_query}X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={cred}"
             f"&X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host")
    headers = [("Host", "localhost:3900")]
    canonical = canonical_request("GET", path, canonical_query_string(query), headers, ["host"],
                                  "UNSIGNED-PAYLOAD")
    sig = sign(signing_key(SECRET, date[:8], region, "s3"), string_to_sign(date, scope,
                                                                           canonical))
    return SignedRequest("GET", path, f"{query}&X-Amz-Signature={sig}", headers)


def verify(req: SignedRequest, now: datetime = NOW):
    return verify_request(req, lookup_secret=lookup, region=REGION, now=now)


def test_valid_header_request_and_no_space_separator() -> None:
    assert verify(header_signed()) is not None
    assert verify(header_signed(sep=",")) is not None
    assert verify(header_signed(sep=",   ")) is not None


def test_anonymous_request_returns_none() -> None:
    assert verify(SignedRequest("GET", "/bucket/key", "list-type=2", [("Host", "h")])) is None


def test_wrong_region_is_authorization_header_malformed_with_region_header() -> None:
    req = header_signed(scope=f"{NOW:%Y%m%d}/us-east-1/s3/aws4_request")
    with pytest.raises(errors.AuthorizationHeaderMalformed) as exc:
        verify(req)
    assert "'us-east-1' is wrong; expecting 'garage'" in exc.value.message
    assert exc.value.headers == {"x-amz-bucket-region": REGION}
    with pytest.raises(errors.AuthorizationHeaderMalformed) as exc:
        verify(presigned(region="us-east-1"))
    assert exc.value.headers == {"x-amz-bucket-region": REGION}


def test_wrong_service() -> None:
    with pytest.raises(errors.AuthorizationHeaderMalformed):
        verify(header_signed(scope=f"{NOW:%Y%m%d}/{REGION}/ec2/aws4_request"))


def test_scope_date_must_match_x_amz_date() -> None:
    with pytest.raises(errors.AuthorizationHeaderMalformed):
        verify(header_signed(scope=f"20240229/{REGION}/s3/aws4_request"))


@pytest.mark.parametrize("minutes", [-16, 16, 60 * 24])
def test_clock_skew(minutes: int) -> None:
    with pytest.raises(errors.RequestTimeTooSkewed):
        verify(header_signed(), NOW + timedelta(minutes=minutes))


def test_small_skew_is_fine_and_naive_now_is_utc() -> None:
    assert verify(header_signed(), NOW + timedelta(minutes=14)) is not None
    assert verify(header_signed(), NOW.replace(tzinfo=None)) is not None


def test_unknown_key() -> None:
    req = header_signed()
    with pytest.raises(errors.InvalidAccessKeyId):
        verify_request(req, lookup_secret=lambda k: None, region=REGION, now=NOW)


def test_bad_signature() -> None:
    req = header_signed()
    auth = req.headers[-1][1]
    flipped = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(SignedRequest(req.method, req.raw_path, req.raw_query,
                             [*req.headers[:-1], ("Authorization", flipped)]))


def test_tampered_header_value_or_query_fails() -> None:
    req = header_signed(query="prefix=a", extra=[("Range", "bytes=0-9")])
    tampered = [(n, "bytes=0-99" if n == "Range" else v) for n, v in req.headers]
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(SignedRequest(req.method, req.raw_path, req.raw_query, tampered))
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(SignedRequest(req.method, req.raw_path, "prefix=b", req.headers))
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(SignedRequest("PUT", req.raw_path, req.raw_query, req.headers))


def test_unsigned_x_amz_header_rejected() -> None:
    req = header_signed()
    with pytest.raises(errors.AccessDenied, match="not signed: x-amz-acl"):
        verify(SignedRequest(req.method, req.raw_path, req.raw_query,
                             [*req.headers, ("X-Amz-Acl", "public-read")]))


def test_host_must_be_signed() -> None:
    req = header_signed(signed=["x-amz-content-sha256", "x-amz-date"])
    with pytest.raises(errors.AccessDenied, match="host"):
        verify(req)


def test_sigv2_header_rejected() -> None:
    req = SignedRequest("GET", "/b/k", "", [("Host", "h"), ("Date", "x"),
                                          ("Authorization", "AWS GK0123:c2lnbmF0dXJl")])
    with pytest.raises(errors.InvalidRequest, match="Version 4"):
        verify(req)
    sigv2_query = "AWSAccessKeyId=GK0123&Expires=1700000000&Signature=abc%3D"
    with pytest.raises(errors.InvalidRequest, match="Version 4"):
        verify(SignedRequest("GET", "/b/k", sigv2_query, [("Host", "h")]))


def test_malformed_authorization_headers() -> None:
    for bad in ("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=a/b/c",
                f"AWS4-HMAC-SHA256 Credential={KEY}/{SCOPE}, SignedHeaders=host",
                f"AWS4-HMAC-SHA256 Credential={KEY}/{SCOPE}, SignedHeaders=Host, Signature=00",
                f"AWS4-HMAC-SHA256 Credential={KEY}/{SCOPE}/x, SignedHeaders=host, Signature=0"):
        req = SignedRequest("GET", "/", "", [("Host", "h"), ("x-amz-date", DATE),
                                            ("x-amz-content-sha256", EMPTY_SHA256),
                                            ("Authorization", bad)])
        with pytest.raises(errors.AuthorizationHeaderMalformed):
            verify(req)


def test_missing_content_sha256_and_date() -> None:
    auth = (f"AWS4-HMAC-SHA256 Credential={KEY}/{SCOPE}, SignedHeaders=host;x-amz-date, "
            f"Signature={'0' * 64}")
    no_sha = [("Host", "h"), ("x-amz-date", DATE), ("Authorization", auth)]
    with pytest.raises(errors.InvalidRequest, match="x-amz-content-sha256"):
        verify(SignedRequest("GET", "/", "", no_sha))
    auth = auth.replace("x-amz-date", "x-amz-content-sha256")
    no_date = [("Host", "h"), ("x-amz-content-sha256", EMPTY_SHA256), ("Authorization", auth)]
    with pytest.raises(errors.AccessDenied, match="Date"):
        verify(SignedRequest("GET", "/", "", no_date))


def test_invalid_content_sha256_value() -> None:
    with pytest.raises(errors.InvalidArgument):
        verify(header_signed(sha="not-a-hash"))


@pytest.mark.parametrize("sha", ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                 "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                                 "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "AB" * 32])
def test_allowed_content_sha256_values(sha: str) -> None:
    result = verify(header_signed(method="PUT", sha=sha))
    assert result is not None and result.content_sha256 == (sha.lower() if sha == "AB" * 32
                                                            else sha)


def test_date_header_instead_of_x_amz_date() -> None:
    headers = [("Host", "h"), ("Date", "Fri, 01 Mar 2024 12:00:00 GMT"),
               ("x-amz-content-sha256", EMPTY_SHA256)]
    names = ["date", "host", "x-amz-content-sha256"]
    canonical = canonical_request("GET", "/", "", headers, names, EMPTY_SHA256)
    sig = sign(signing_key(SECRET, DATE[:8], REGION, "s3"), string_to_sign(DATE, SCOPE,
                                                                           canonical))
    auth = f"AWS4-HMAC-SHA256 Credential={KEY}/{SCOPE},SignedHeaders={';'.join(names)}," \
           f"Signature={sig}"
    assert verify(SignedRequest("GET", "/", "", [*headers, ("Authorization", auth)]))
    unsigned_date = auth.replace("SignedHeaders=date;", "SignedHeaders=")
    with pytest.raises(errors.AccessDenied, match="Date"):
        verify(SignedRequest("GET", "/", "", [*headers, ("Authorization", unsigned_date)]))


def test_presigned_ok_and_expired() -> None:
    req = presigned()
    assert verify(req, NOW + timedelta(seconds=3600)) is not None
    with pytest.raises(errors.AccessDenied, match="expired"):
        verify(req, NOW + timedelta(seconds=3601))


def test_presigned_in_the_future() -> None:
    with pytest.raises(errors.AccessDenied):
        verify(presigned(), NOW - timedelta(minutes=16))
    assert verify(presigned(), NOW - timedelta(minutes=14)) is not None


@pytest.mark.parametrize(("expires", "message"), [
    ("604801", "less than a week"), ("9" * 5000, "less than a week"),
    ("-5", "non-negative"), ("abc", "should be a number"), ("", "should be a number"),
    ("\u0666\u0660", "should be a number"), ("\u00b2", "should be a number"),
    ("+1", "should be a number"), (" 1", "should be a number")])
def test_presigned_bad_expires(expires: str, message: str) -> None:
    with pytest.raises(errors.AuthorizationQueryParametersError, match=message):
        verify(presigned(expires=quote(expires, safe="")))


def test_presigned_zero_expires_has_expired() -> None:
    with pytest.raises(errors.AccessDenied, match="expired"):
        verify(presigned(expires="0"), NOW)


def test_presigned_max_expiry_accepted() -> None:
    assert verify(presigned(expires="604800"), NOW + timedelta(days=6)) is not None


def test_presigned_duplicate_and_missing_params() -> None:
    req = presigned()
    with pytest.raises(errors.InvalidRequest, match="Duplicate"):
        verify(SignedRequest("GET", req.raw_path, req.raw_query + "&X-Amz-Expires=10",
                             req.headers))
    stripped = "&".join(p for p in req.raw_query.split("&")
                        if not p.startswith("X-Amz-SignedHeaders"))
    with pytest.raises(errors.InvalidRequest):
        verify(SignedRequest("GET", req.raw_path, stripped, req.headers))


def test_presigned_with_extra_params_and_tampering() -> None:
    req = presigned(extra_query="response-content-type=text%2Fplain&versionId=&")
    assert verify(req) is not None
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(SignedRequest("GET", req.raw_path, req.raw_query.replace("text", "image"),
                             req.headers))


def test_presigned_and_header_auth_together_rejected() -> None:
    req = presigned()
    with pytest.raises(errors.InvalidRequest):
        verify(SignedRequest("GET", req.raw_path, req.raw_query,
                             [*req.headers, ("Authorization", "AWS4-HMAC-SHA256 x")]))


def test_multi_value_and_whitespace_headers_canonicalised() -> None:
    extra = [("X-Amz-Meta-A", "  one   two  "), ("x-amz-meta-a", "three"),
             ("My-Header", "\tx  y\t")]
    req = header_signed(extra=extra)
    canonical = canonical_request("GET", "/", "", req.headers, ["my-header", "x-amz-meta-a"], "")
    assert "my-header:x y\nx-amz-meta-a:one two,three\n" in canonical
    assert verify(req) is not None


def test_query_canonicalisation() -> None:
    assert canonical_query_string("a=1&b") == "a=1&b="
    assert canonical_query_string("b=2&a=2&a=1") == "a=1&a=2&b=2"
    # '+' is literal; %20 is a space; lowercase escapes are normalised; '~' kept.
    assert canonical_query_string("k=a+b%20c%2fd~") == "k=a%2Bb%20c%2Fd~"
    assert canonical_query_string("prefix=%C3%A9t%C3%A9&&") == "prefix=%C3%A9t%C3%A9"
    assert canonical_query_string("X-Amz-Signature=1&x=2", exclude=("X-Amz-Signature",)) \
        == "x=2"
