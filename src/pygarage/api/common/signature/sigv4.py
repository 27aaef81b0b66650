"""AWS Signature Version 4 verification for S3 requests (header and presigned-URL forms).

Pure functions: the caller hands over the request as received and the current time; we
return who signed it and what the payload is supposed to hash to, or raise an S3Error.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from .. import errors
from ..wire import is_ascii_uint, parse_uint

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_SPECIAL_PAYLOADS = frozenset(
    {UNSIGNED_PAYLOAD, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER})
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_DATE8 = re.compile(r"[0-9]{8}")
# Only ASCII blanks: header values may carry latin-1 decoded UTF-8 where \xa0 is data.
_BLANKS = re.compile(r"[ \t]+")
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                   "X-Amz-SignedHeaders", "X-Amz-Signature")


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request SigV4 covers, exactly as they came off the wire.

    Header values are expected decoded as UTF-8 with surrogateescape (aiohttp's choice), so
    encoding them back yields the bytes the client signed.
    """

    method: str
    raw_path: str  # path exactly as received, percent-encoded, no query
    raw_query: str  # query string exactly as received (no '?')
    headers: list[tuple[str, str]]  # names as received (any case), in order


@dataclass(frozen=True)
class SigningContext:
    key_id: str
    signing_key: bytes = field(repr=False)  # secret-derived: keep it out of logs
    scope: str  # "20130524/us-east-1/s3/aws4_request"
    amz_date: str  # "20130524T000000Z"
    seed_signature: str


@dataclass(frozen=True)
class AuthResult:
    key_id: str
    content_sha256: str  # x-amz-content-sha256 value, or UNSIGNED-PAYLOAD for presigned
    context: SigningContext
    presigned: bool


# ---------------------------------------------------------------------------- primitives


def uri_encode(data: str | bytes) -> str:
    """AWS percent-encoding: unreserved characters kept, everything else %XX uppercase."""
    return quote(data, safe="~")


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Split a raw query into still-encoded (name, value) pairs, keeping blank values."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def _decode(component: str) -> str:
    # '+' is kept literal: AWS clients encode spaces as %20, so '+' really means '+'.
    return unquote_to_bytes(component).decode("utf-8", "surrogateescape")


def _reencode(component: str) -> str:
    # Round-trip through bytes so invalid UTF-8 escapes survive unchanged.
    return uri_encode(unquote_to_bytes(component))


def canonical_query_string(raw_query: str, *, exclude: Sequence[str] = ()) -> str:
    """Canonical query: each pair decoded then re-encoded, sorted by name then value."""
    encoded = [(_reencode(name), _reencode(value)) for name, value in parse_query(raw_query)
               if _decode(name) not in exclude]
    return "&".join(f"{name}={value}" for name, value in sorted(encoded))


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in headers:
        name = name.lower()
        values = result.get(name)
        if values is None:
            result[name] = [value]
        else:
            values.append(value)
    return result


def _canonical_value(values: list[str]) -> str:
    if len(values) == 1:
        v = values[0].strip(" \t")
        # Nearly every value has no run of blanks inside: no regex for those.
        return _BLANKS.sub(" ", v) if "\t" in v or "  " in v else v
    return ",".join(_BLANKS.sub(" ", v.strip(" \t")) for v in values)


def canonical_request(method: str, raw_path: str, canonical_query: str,
                      headers: Sequence[tuple[str, str]], signed_headers: Sequence[str],
                      payload_hash: str) -> str:
    """The SigV4 canonical request; the path is used verbatim (S3 does not re-encode it)."""
    return _canonical_request(method, raw_path, canonical_query, _header_map(headers),
                              signed_headers, payload_hash)


def _canonical_request(method: str, raw_path: str, canonical_query: str,
                       by_name: dict[str, list[str]], signed_headers: Sequence[str],
                       payload_hash: str) -> str:
    lines = [f"{name}:{_canonical_value(by_name.get(name, []))}\n" for name in signed_headers]
    return "\n".join([method.upper(), raw_path or "/", canonical_query, "".join(lines),
                      ";".join(signed_headers), payload_hash])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    # Not hmac.digest, though cheaper in CPU: it releases the GIL, and a busy thread may
    # then hold the event loop up for the switch interval (measured: 66 vs 6 us per call
    # with another thread running).
    return hmac.new(key, msg.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()


def signing_key(secret: str, date8: str, region: str, service: str) -> bytes:
    cache_key = (secret, date8, region, service)
    key = _signing_keys.get(cache_key)
    if key is None:
        key = _hmac(("AWS4" + secret).encode(), date8)
        for part in (region, service, "aws4_request"):
            key = _hmac(key, part)
        if len(_signing_keys) >= _SIGNING_KEYS_MAX:
            _signing_keys.clear()
        _signing_keys[cache_key] = key
    return key


# Derived keys change once a day per secret: four HMACs saved on nearly every request.
_SIGNING_KEYS_MAX = 1024
_signing_keys: dict[tuple[str, str, str, str], bytes] = {}


def sign(key: bytes, to_sign: str) -> str:
    """Hex HMAC-SHA256 of a string to sign."""
    return _hmac(key, to_sign).hex()


def signatures_equal(expected: str, provided: str) -> bool:
    return hmac.compare_digest(expected.encode(), provided.lower().encode("utf-8", "replace"))


# ------------------------------------------------------------------------- verification


def verify_request(req: SignedRequest, *, lookup_secret: Callable[[str], str | None],
                   region: str, service: str = "s3", now: datetime,
                   also_accept_regions: Collection[str] = ()) -> AuthResult | None:
    """Check a request's SigV4 signature; None when it carries no credentials at all.

    also_accept_regions: scope regions accepted besides `region` (the signature is then
    checked against the scope's own region), e.g. us-east-1 for GetBucketLocation.
    """
    regions = (region, *also_accept_regions)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    headers = _header_map(req.headers)
    query_names = {_decode(name) for name, _ in parse_query(req.raw_query)}
    authorization = headers.get("authorization")
    presigned = "X-Amz-Algorithm" in query_names
    if authorization is not None:
        if presigned:
            raise errors.InvalidRequest("Only one auth mechanism allowed; only the "
                                        "X-Amz-Algorithm query parameter or the Authorization "
                                        "header should be specified")
        if len(authorization) != 1:
            raise errors.InvalidRequest("Multiple Authorization headers are not allowed")
        return _verify_header_auth(req, headers, authorization[0], lookup_secret, regions,
                                   service, now)
    if presigned:
        return _verify_presigned(req, headers, lookup_secret, regions, service, now)
    if "AWSAccessKeyId" in query_names or "Signature" in query_names:
        raise errors.InvalidRequest("Signature Version 2 is not supported; "
                                    "use AWS Signature Version 4 (AWS4-HMAC-SHA256)")
    if "X-Amz-Signature" in query_names or "X-Amz-Credential" in query_names:
        raise errors.InvalidRequest("Missing X-Amz-Algorithm query parameter")
    return None


@dataclass(frozen=True)
class _Credential:
    key_id: str
    date8: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date8}/{self.region}/{self.service}/aws4_request"


def _parse_credential(value: str, regions: Sequence[str], service: str) -> _Credential:
    region = regions[0]
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0] or parts[4] != "aws4_request":
        raise errors.AuthorizationHeaderMalformed(
            f"The authorization header is malformed; the Credential is mal-formed; "
            f"expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\": {value!r}")
    cred = _Credential(*parts[:4])
    if not _DATE8.fullmatch(cred.date8):
        raise errors.AuthorizationHeaderMalformed(
            f"The authorization header is malformed; incorrect date format {cred.date8!r}")
    if cred.region not in regions:
        # x-amz-bucket-region lets SDKs redirect themselves to the right region.
        raise errors.AuthorizationHeaderMalformed(
            f"The authorization header is malformed; the region '{cred.region}' is wrong; "
            f"expecting '{region}'", headers={"x-amz-bucket-region": region})
    if cred.service != service:
        raise errors.AuthorizationHeaderMalformed(
            f"The authorization header is malformed; incorrect service '{cred.service}'; "
            f"expecting '{service}'")
    return cred


def _parse_amz_date(value: str) -> datetime:
    # Concurrent requests mostly carry the same few seconds: parse each once.
    when = _dates.get(value)
    if when is None:
        when = _parse_amz_date_uncached(value)  # raises on a bad value: never cached
        if len(_dates) >= 64:
            _dates.clear()
        _dates[value] = when
    return when


_dates: dict[str, datetime] = {}


def _parse_amz_date_uncached(value: str) -> datetime:
    if not _AMZ_DATE.fullmatch(value):
        raise errors.AccessDenied(f"Invalid date format {value!r}; expecting YYYYMMDD'T'HHMMSS'Z'")
    try:  # the fields by position (the format is checked above): strptime is slow
        return datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                        int(value[11:13]), int(value[13:15]), tzinfo=UTC)
    except ValueError:
        raise errors.AccessDenied(f"Invalid date {value!r}") from None


def _request_date(headers: dict[str, list[str]]) -> tuple[str, datetime]:
    if "x-amz-date" in headers:
        amz_date = headers["x-amz-date"][0].strip()
        return amz_date, _parse_amz_date(amz_date)
    if "date" in headers:
        try:
            when = parsedate_to_datetime(headers["date"][0])
        except (TypeError, ValueError):
            raise errors.AccessDenied("Invalid Date header") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        when = when.astimezone(UTC)
        return when.strftime(AMZ_DATE_FORMAT), when
    raise errors.AccessDenied("AWS authentication requires a valid Date or x-amz-date header")


def _check_payload_hash(value: str) -> str:
    if value in _SPECIAL_PAYLOADS or _HEX64.fullmatch(value):
        return value
    raise errors.InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.")


def _normalized(payload_hash: str) -> str:
    # Signed as sent, but callers compare hex digests with hashlib's lowercase output.
    return payload_hash.lower() if _HEX64.fullmatch(payload_hash) else payload_hash


def _parse_signed_headers(value: str, headers: dict[str, list[str]]) -> list[str]:
    names = value.split(";")
    if not value or any(not n or n != n.lower() or n != n.strip() for n in names):
        raise errors.AuthorizationHeaderMalformed(
            f"The authorization header is malformed; invalid SignedHeaders {value!r}")
    signed = set(names)
    if "host" not in signed:
        raise errors.AccessDenied("The host header must be signed")
    # An unsigned x-amz-* header could change the request's meaning undetected.
    unsigned = sorted(n for n in headers if n.startswith("x-amz-") and n not in signed)
    if unsigned:
        raise errors.AccessDenied("There were headers present in the request which were not "
                                  "signed: " + ", ".join(unsigned))
    missing = [n for n in names if n not in headers]
    if missing:
        raise errors.AccessDenied("Signed headers are missing from the request: "
                                  + ", ".join(missing))
    return names


def _parse_authorization(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        version = "Version 2" if scheme == "AWS" else f"scheme {scheme!r}"
        raise errors.InvalidRequest(f"Unsupported authorization {version}; only AWS Signature "
                                    f"Version 4 ({ALGORITHM}) is supported")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, component = item.strip().partition("=")
        name = name.strip()
        if not sep or name in fields:
            raise errors.AuthorizationHeaderMalformed(
                f"The authorization header is malformed; bad component {item.strip()!r}")
        fields[name] = component.strip()
    for required in ("Credential", "SignedHeaders", "Signature"):
        if required not in fields:
            raise errors.AuthorizationHeaderMalformed(
                f"The authorization header is malformed; missing {required}")
    return fields


def _context(cred: _Credential, secret: str, amz_date: str, seed: str) -> SigningContext:
    key = signing_key(secret, cred.date8, cred.region, cred.service)
    return SigningContext(key_id=cred.key_id, signing_key=key, scope=cred.scope,
                          amz_date=amz_date, seed_signature=seed)


def _check_signature(req: SignedRequest, headers: dict[str, list[str]], ctx: SigningContext,
                     canonical_query: str, signed: list[str], payload_hash: str,
                     provided: str) -> None:
    canonical = _canonical_request(req.method, req.raw_path, canonical_query, headers, signed,
                                   payload_hash)
    expected = sign(ctx.signing_key, string_to_sign(ctx.amz_date, ctx.scope, canonical))
    if not signatures_equal(expected, provided):
        raise errors.SignatureDoesNotMatch()


def _lookup(lookup_secret: Callable[[str], str | None], key_id: str) -> str:
    secret = lookup_secret(key_id)
    if secret is None:
        raise errors.InvalidAccessKeyId()
    return secret


def _verify_header_auth(req: SignedRequest, headers: dict[str, list[str]], value: str,
                        lookup_secret: Callable[[str], str | None], regions: Sequence[str],
                        service: str, now: datetime) -> AuthResult:
    fields = _parse_authorization(value)
    cred = _parse_credential(fields["Credential"], regions, service)
    signed = _parse_signed_headers(fields["SignedHeaders"], headers)
    amz_date, when = _request_date(headers)
    if "x-amz-date" not in headers and "date" not in signed:
        raise errors.AccessDenied("The Date header must be signed")
    if cred.date8 != amz_date[:8]:
        raise errors.AuthorizationHeaderMalformed(
            "The authorization header is malformed; Invalid credential date. "
            "Date is not the same as X-Amz-Date.")
    if abs(now - when) > MAX_SKEW:
        raise errors.RequestTimeTooSkewed()
    sha_values = headers.get("x-amz-content-sha256")
    if not sha_values:
        raise errors.InvalidRequest(
            "Missing required header for this request: x-amz-content-sha256")
    payload_hash = _check_payload_hash(sha_values[0].strip())
    ctx = _context(cred, _lookup(lookup_secret, cred.key_id), amz_date,
                   fields["Signature"].lower())
    _check_signature(req, headers, ctx, canonical_query_string(req.raw_query), signed,
                     payload_hash, fields["Signature"])
    return AuthResult(key_id=cred.key_id, content_sha256=_normalized(payload_hash), context=ctx,
                      presigned=False)


def _parse_expires(value: str) -> int:
    """X-Amz-Expires, with AWS's errors and messages (checked before the signature, as AWS
    does: an URL that is too long-lived or expired is refused whoever signed it)."""
    err = errors.AuthorizationQueryParametersError
    if value.startswith("-") and is_ascii_uint(value[1:]):
        raise err("X-Amz-Expires must be non-negative")
    if not value or value.strip("0123456789"):
        raise err("X-Amz-Expires should be a number")
    return parse_uint(value, "X-Amz-Expires", max_value=MAX_PRESIGN_EXPIRES, error=err,
                      message="X-Amz-Expires must be less than a week (in seconds) that is; "
                              f"{MAX_PRESIGN_EXPIRES}")


def _presign_params(raw_query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in parse_query(raw_query):
        decoded = _decode(name)
        if decoded.startswith("X-Amz-"):
            if decoded in params:
                raise errors.InvalidRequest(f"Duplicate query parameter {decoded}")
            params[decoded] = _decode(value)
    for required in _PRESIGN_PARAMS:
        if required not in params:
            raise errors.InvalidRequest(
                f"Query-string authentication requires the {required} parameter")
    return params


def _verify_presigned(req: SignedRequest, headers: dict[str, list[str]],
                      lookup_secret: Callable[[str], str | None], regions: Sequence[str],
                      service: str, now: datetime) -> AuthResult:
    params = _presign_params(req.raw_query)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise errors.InvalidRequest(f"Unsupported X-Amz-Algorithm; only AWS Signature "
                                    f"Version 4 ({ALGORITHM}) is supported")
    cred = _parse_credential(params["X-Amz-Credential"], regions, service)
    signed = _parse_signed_headers(params["X-Amz-SignedHeaders"], headers)
    amz_date = params["X-Amz-Date"]
    when = _parse_amz_date(amz_date)
    if cred.date8 != amz_date[:8]:
        raise errors.AccessDenied("Invalid credential date. Date is not the same as X-Amz-Date.")
    expires = _parse_expires(params["X-Amz-Expires"])
    # X-Amz-Expires=0 is valid (AWS accepts it) but for no time at all.
    if expires == 0 or now > when + timedelta(seconds=expires):
        raise errors.AccessDenied("Request has expired")
    if when - now > MAX_SKEW:
        raise errors.AccessDenied("Request is not valid yet")
    # A presigned URL may pin its payload through a signed header; otherwise it cannot.
    sha_header = headers.get("x-amz-content-sha256")
    payload_hash = UNSIGNED_PAYLOAD
    if "X-Amz-Content-Sha256" in params:
        payload_hash = _check_payload_hash(params["X-Amz-Content-Sha256"])
    elif sha_header:
        payload_hash = _check_payload_hash(sha_header[0].strip())
    signature = params["X-Amz-Signature"]
    ctx = _context(cred, _lookup(lookup_secret, cred.key_id), amz_date, signature.lower())
    query = canonical_query_string(req.raw_query, exclude=("X-Amz-Signature",))
    _check_signature(req, headers, ctx, query, signed, payload_hash, signature)
    return AuthResult(key_id=cred.key_id, content_sha256=_normalized(payload_hash), context=ctx,
                      presigned=True)
