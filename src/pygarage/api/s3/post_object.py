"""PostObject: browser form uploads (multipart/form-data POST to the bucket URL).

The form's text fields come first (each at most MAX_FIELD bytes, MAX_FIELDS of them), then
the `file` field, whose bytes are streamed to blocks as they arrive: never held whole.
Fields after the file are ignored, as on AWS. The form is authenticated by its own SigV4
signature of the policy (post_policy), not by the request's headers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import BodyPartReader, MultipartReader, web

from ...model.bucket_table import Bucket
from ...model.garage import Garage
from ...model.helpers.bucket import BucketHelper
from ...model.key_table import Key
from ...util.clock import SYSTEM_CLOCK, Clock
from ..common import errors
from ..common.signature import checksum as ck
from ..common.signature.sigv4 import AuthResult, SigningContext
from ..common.wire import check_header_value
from . import encryption, object_writer, post_policy, xml
from .context import ReqCtx
from .meta import headers_to_store
from .names import check_object_key
from .put import Reader, Written
from .router import Endpoint

MAX_FIELD = 20 * 1024  # AWS caps the whole form (without the file) near 20 KB
MAX_FIELDS = 200
MAX_FILE = 5 * 1024**3  # as a single PutObject
_CHUNK = 256 * 1024


class MalformedPOSTRequest(errors.S3Error):
    status, code = 400, "MalformedPOSTRequest"
    default_message = "The body of your POST request is not well-formed multipart/form-data."


async def _field_text(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while True:
        chunk = await part.read_chunk(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_FIELD:
            raise errors.InvalidArgument(f"The form field {name} is too large (the limit is "
                                         f"{MAX_FIELD} bytes).")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidArgument(f"The form field {name} is not valid UTF-8.") from None


async def read_fields(reader: MultipartReader) -> tuple[dict[str, str], BodyPartReader | None]:
    """Text fields up to the file field; -> (fields by lower-case name, the file part)."""
    fields: dict[str, str] = {}
    count = 0
    while True:
        part = await reader.next()
        if part is None:
            return fields, None
        if not isinstance(part, BodyPartReader):  # a nested multipart: not a form field
            raise MalformedPOSTRequest()
        count += 1
        if count > MAX_FIELDS:
            raise errors.InvalidArgument("The form has too many fields.")
        if part.name is None:
            await part.release()
            continue
        name = part.name.lower()
        if name == "file":
            return fields, part
        if name in fields:
            raise errors.InvalidArgument(f"The form field {name} appears more than once.")
        fields[name] = await _field_text(part, name)


async def skip_rest(reader: MultipartReader) -> None:
    """Read (and ignore, as AWS does) the fields after the file, up to the closing boundary:
    a form that ends without it was cut, and its file must not be stored."""
    try:
        for _ in range(MAX_FIELDS):
            part = await reader.next()
            if part is None:
                return
            await part.release()
    except Exception:
        raise MalformedPOSTRequest() from None
    raise errors.InvalidArgument("The form has too many fields.")


def file_reader(reader: MultipartReader, part: BodyPartReader,
                on_size: Callable[[int], None]) -> Reader:
    """Reader over the file field; on_size(total so far) may refuse it mid-stream. The end
    of the file is only reported once the form's closing boundary was read."""
    buf = bytearray()
    done = False
    total = 0

    async def read(n: int) -> bytes:
        nonlocal done, total
        while len(buf) < n and not done:
            try:
                chunk = await part.read_chunk(_CHUNK)
            except Exception as e:  # the body cut short, a part that never ends properly
                raise errors.IncompleteBody(f"error reading the form's file: {e}") from None
            if not chunk:
                await skip_rest(reader)
                done = True
            total += len(chunk)
            on_size(total)
            buf.extend(chunk)
        out = bytes(buf[:n])
        del buf[:n]
        return out
    return read


class PostObjectHandler:
    def __init__(self, garage: Garage, regions: tuple[str, ...], clock: Clock = SYSTEM_CLOCK):
        self.garage = garage
        self.regions = regions
        self.clock = clock

    def _lookup(self, found: list[Key]) -> Callable[[str], str | None]:
        def lookup(key_id: str) -> str | None:
            k = self.garage.key_table.data.read_entry(key_id.encode(), b"")
            if k is None or k.deleted:
                return None
            found.append(k)
            return k.secret
        return lookup

    async def handle(self, request: web.BaseRequest, bucket_name: str) -> web.StreamResponse:
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise errors.PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold; Condition: "
                "Bucket POST must be of the enclosure-type multipart/form-data")
        if request.headers.get("expect", "").lower() == "100-continue" \
                and request.version >= (1, 1):
            # The credentials are in the body: it must come before anything can be checked.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # type: ignore[attr-defined]
        try:
            reader = MultipartReader(request.headers, request.content)
            fields, file_part = await read_fields(reader)
        except errors.S3Error:
            raise
        except Exception:  # bad boundary, cut body, broken part headers
            raise MalformedPOSTRequest() from None
        return await self._upload(request, bucket_name, reader, fields, file_part)

    async def _upload(self, request: web.BaseRequest, bucket_name: str,
                      reader: MultipartReader, fields: dict[str, str],
                      file_part: BodyPartReader | None
                      ) -> web.StreamResponse:
        if "x-amz-signature" not in fields and "policy" not in fields:
            raise errors.AccessDenied("anonymous access is not supported; sign the form's "
                                      "policy with an access key")
        found: list[Key] = []
        auth = post_policy.verify_form_signature(fields, self.regions, self._lookup(found))
        api_key = found[-1]
        if "key" not in fields:
            raise errors.InvalidArgument("Bucket POST must contain a field named 'key'.  If "
                                         "it is specified, please check the order of the "
                                         "fields.")
        if file_part is None:
            raise errors.InvalidArgument("POST requires exactly one file upload per request.")
        key = fields["key"]
        if "${filename}" in key and file_part.filename:
            # Browsers send the base name; some old ones a full Windows path.
            key = key.replace("${filename}", file_part.filename.rsplit("\\", 1)[-1])
        check_object_key(key)
        policy = post_policy.decode_policy(fields["policy"])
        now = datetime.fromtimestamp(self.clock.now_msec() / 1000, UTC)
        post_policy.check_policy(policy, fields, bucket_name, key, now)
        bucket = await self._writable_bucket(bucket_name, api_key)

        stored = headers_to_store(fields, list(fields.items()))
        sse = encryption.for_write(fields)
        declared = ck.parse_checksum_headers(fields)
        algo = declared[0] if declared else ck.requested_algorithm(fields)
        summer = ck.Checksummer([algo] if algo else [], md5=True)

        def on_size(total: int) -> None:
            if total > MAX_FILE:
                raise errors.EntityTooLarge(f"a single upload is limited to {MAX_FILE} bytes")
            post_policy.check_length(policy, total, final=False)

        def verify(w: Written) -> tuple[str, str] | None:
            post_policy.check_length(policy, w.size, final=True)
            md5 = fields.get("content-md5")
            if md5 is not None and w.checksums.md5 is not None and \
                    not ck.content_md5_matches(md5, w.checksums.md5):
                raise errors.BadDigest("The Content-MD5 you specified did not match what we "
                                       "received.")
            if declared is not None:
                ck.verify(declared[1], declared[0], w.checksums)
                return declared
            return (algo, w.checksums.extra[algo]) if algo else None

        ctx = self._ctx(request, bucket_name, bucket, key, api_key, auth)
        done = await object_writer.write_object(ctx, key,
                                                file_reader(reader, file_part, on_size),
                                                stored, sse, summer, verify)
        assert done.meta is not None
        return self._response(request, fields, bucket_name, key, done.meta.etag, sse)

    async def _writable_bucket(self, bucket_name: str, api_key: Key) -> Bucket:
        helper = BucketHelper(self.garage)
        bid = await helper.resolve(bucket_name, api_key)
        bucket = await helper.get(bid) if bid else None
        if bucket is None:
            raise errors.NoSuchBucket()
        if not api_key.permissions(bucket.id)[1]:
            raise errors.AccessDenied(f"access key {api_key.key_id} has no permission "
                                      f"for PostObject on bucket {bucket_name}")
        return bucket

    def _ctx(self, request: web.BaseRequest, bucket_name: str, bucket: Bucket, key: str,
             api_key: Key, auth: post_policy.FormAuth) -> ReqCtx:
        # The form's own credentials stand for the request's: no payload hash was signed.
        signing = SigningContext(auth.key_id, b"", "", "", "")
        result = AuthResult(auth.key_id, "UNSIGNED-PAYLOAD", signing, presigned=False)
        return ReqCtx(self.garage, request, Endpoint("PostObject", bucket_name, key), {},
                      api_key, result, bucket_name, bucket)

    def _response(self, request: web.BaseRequest, fields: dict[str, str], bucket_name: str,
                  key: str, etag: str, sse: encryption.Sealed | None) -> web.Response:
        quoted = f'"{etag}"'
        headers = {"ETag": quoted, **encryption.response_headers(sse)}
        redirect = fields.get("success_action_redirect") or fields.get("redirect")
        target = _redirect_target(redirect, bucket_name, key, quoted) if redirect else None
        if target is not None:
            headers["Location"] = target
            return web.Response(status=303, headers=headers)
        host = check_header_value(request.headers.get("host", ""), "Host")
        base = request.raw_path.split("?", 1)[0].rstrip("/")
        location = f"{request.scheme}://{host}{base}/{quote(key, safe='/~')}"
        headers["Location"] = location
        status = fields.get("success_action_status")
        if status == "200":
            return web.Response(status=200, headers=headers)
        if status == "201":
            body = xml._doc("PostResponse", xml._t("Location", location),
                            xml._t("Bucket", bucket_name), xml._t("Key", key),
                            xml._t("ETag", quoted), ns=False)
            return web.Response(status=201, body=body, content_type="application/xml",
                                headers=headers)
        return web.Response(status=204, headers=headers)


def _redirect_target(url: str, bucket: str, key: str, etag: str) -> str | None:
    """success_action_redirect with bucket, key and etag added to its query; None if it is
    not an http(s) URL that can be sent in a header (then the status answer is used)."""
    try:
        check_header_value(url, "success_action_redirect")
        parts = urlsplit(url)
    except (errors.S3Error, ValueError):
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or \
            any(c in url for c in " \t"):
        return None
    extra = urlencode({"bucket": bucket, "key": key, "etag": etag}, quote_via=quote)
    base, _, fragment = url.partition("#")
    sep = "&" if "?" in base else "?"
    target = base + (sep if not base.endswith(("?", "&")) else "") + extra
    return target + ("#" + fragment if fragment else "")
