"""The S3 endpoint: authenticate (SigV4), resolve the bucket, check the permission, answer
`Expect: 100-continue` only then, dispatch to the endpoint's handler, render S3 errors."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from ...model.bucket_table import Bucket
from ...model.garage import Garage
from ...model.helpers.bucket import BucketHelper
from ...model.helpers.errors import HelperError
from ...model.key_table import Key
from ...table.cache import EntryCache
from ...util import access_log, metrics
from ...util.errors import GarageError
from ...util.logsafe import logsafe
from ..common import errors
from ..common.http import cut_connection
from ..common.signature.sigv4 import SignedRequest, verify_request
from ..common.wire import printable
from . import bucket as bucket_ep
from . import (
    copy_object,
    cors,
    delete,
    encryption,
    get,
    lifecycle,
    listing_api,
    multipart,
    object_attributes,
    object_writer,
    post_object,
    put,
    website,
    xml,
)
from .body import Body
from .context import ReqCtx
from .router import Endpoint, route, split_path

log = logging.getLogger(__name__)

MAX_XML_BODY = 4 * 1024 * 1024
MAX_PUT_SIZE = 5 * 1024**3  # AWS's limit for one PUT (and one part)

READ_ENDPOINTS = {"GetObject", "HeadObject", "GetObjectAttributes", "ListObjects", "ListObjectsV2",
                  "ListObjectVersions", "ListMultipartUploads", "ListParts", "HeadBucket",
                  "GetBucketLocation", "GetBucketVersioning", "GetBucketAcl"}
OWNER_ENDPOINTS = {"DeleteBucket", "GetBucketWebsite", "PutBucketWebsite",
                   "DeleteBucketWebsite", "GetBucketCors", "PutBucketCors", "DeleteBucketCors"}
OWNER_ENDPOINTS |= {"GetBucketLifecycle", "PutBucketLifecycle", "DeleteBucketLifecycle"}
IMPLEMENTED = READ_ENDPOINTS - {"GetBucketAcl"} | {
    "ListBuckets", "CreateBucket", "DeleteBucket", "PutObject", "CopyObject", "DeleteObject",
    "DeleteObjects", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
    "CompleteMultipartUpload", "AbortMultipartUpload", "GetBucketWebsite", "PutBucketWebsite",
    "DeleteBucketWebsite", "GetBucketCors", "PutBucketCors", "DeleteBucketCors"}
IMPLEMENTED |= {"GetBucketLifecycle", "PutBucketLifecycle", "DeleteBucketLifecycle"}
# Endpoints whose handlers may modify the key or bucket entry they get (and write it back):
# they get their own copies, not the shared cached ones.
_ADMIN_ENDPOINTS = {"CreateBucket", "DeleteBucket", "ListBuckets"} | OWNER_ENDPOINTS


_CONDITIONAL_WRITES = {"PutObject", "CopyObject", "CompleteMultipartUpload"}


class S3ApiServer:
    def __init__(self, garage: Garage):
        self.garage = garage
        self.region = garage.config.s3_api.s3_region
        self.root_domain = garage.config.s3_api.root_domain
        self.strict_region = garage.config.s3_api.strict_region
        self._rid_prefix = secrets.token_hex(4).upper()
        self._rid_seq = itertools.count()
        self._keys = EntryCache(garage.key_table)
        self._aliases = EntryCache(garage.bucket_alias_table)
        # Endpoint names are the router's: a bounded set.
        self._endpoint_metrics: dict[str, tuple[Any, Any]] = {}
        self._buckets = EntryCache(garage.bucket_table)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        start = time.monotonic()
        # Unique, not secret: a random per-process prefix and a counter (no system call).
        request_id = f"{self._rid_prefix}{next(self._rid_seq) & 0xFFFFFFFF:08X}"
        info = {"name": "Unknown"}
        error: BaseException | None = None
        try:
            resp = await self._handle(request, info)
        except Exception as e:
            error, resp = e, self._error_for(request, e, request_id)
        if error is not None and request.writer.output_size > 0:
            cut_connection(request, error)
        elapsed = time.monotonic() - start
        name = info["name"]
        per_endpoint = self._endpoint_metrics.get(name)
        if per_endpoint is None:  # labels() per request is a lock and a lookup each
            per_endpoint = self._endpoint_metrics[name] = (
                metrics.api_requests.labels(name), metrics.api_duration.labels(name))
        per_endpoint[0].inc()
        per_endpoint[1].observe(elapsed)
        if resp.status >= 400:
            metrics.api_errors.labels(name, str(resp.status)).inc()
        access_log.info(log, f"{name} {logsafe(request.method)} {logsafe(request.path)} -> "
                             f"{resp.status} ({elapsed * 1000:.1f} ms)")
        if not resp.prepared:
            resp.headers["x-amz-request-id"] = request_id
            if request.body_exists and not request.content.is_eof():
                # The body was not read (rejected early, maybe without 100 Continue, so the
                # client may never send it): only closing keeps the stream in sync.
                resp.force_close()
        return resp

    def _error_for(self, request: web.BaseRequest, e: Exception,
                   request_id: str) -> web.Response:
        if isinstance(e, errors.S3Error):
            return self._error(request, e, request_id)
        if isinstance(e, HelperError):
            return self._error(request, _helper_to_s3(e), request_id)
        if isinstance(e, GarageError):
            log.warning("%s %s: %s", logsafe(request.method), logsafe(request.path),
                        logsafe(e))
            return self._error(request, errors.ServiceUnavailable(str(e)), request_id)
        if isinstance(e, ConnectionError) and \
                (request.transport is None or request.transport.is_closing()):
            # The client went away: nothing can be answered. 499 is nginx's "client closed
            # request", for the log line and the metrics only.
            return web.Response(status=499)
        log.exception("internal error on %s %s", logsafe(request.method),
                      logsafe(request.path))
        return self._error(request, errors.InternalError(), request_id)

    def _error(self, request: web.BaseRequest, e: errors.S3Error,
               request_id: str) -> web.Response:
        headers = dict(e.headers)
        headers["x-amz-request-id"] = request_id
        if request.method == "HEAD" or e.status == 304:
            return web.Response(status=e.status, headers=headers)
        # Messages may quote client input: undecodable bytes and control characters would
        # make the XML unreadable.
        body = xml.error_xml(e.code, printable(e.message), printable(request.path),
                             self.region, request_id)
        return web.Response(status=e.status, body=body, content_type="application/xml",
                            headers=headers)

    async def _handle(self, request: web.BaseRequest,
                      info: dict[str, str]) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        bucket_name, key = split_path(raw_path, request.headers.get("host"), self.root_domain)
        unsupported: errors.S3Error | None = None
        lower_headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            endpoint = route(request.method, bucket_name, key, query, lower_headers)
        except errors.NotImplementedErr as e:
            # Answered after authentication: anonymous or badly signed requests get a 403.
            endpoint, unsupported = Endpoint("NotImplemented", bucket_name, key), e
        info["name"] = endpoint.name
        if endpoint.name == "Options":
            return await self._preflight(bucket_name, lower_headers)
        if endpoint.name == "PostObject" and bucket_name is not None:
            # Authenticated by the form's signed policy, inside the body.
            regions = (self.region,) + (("us-east-1",) if not self.strict_region else ())
            return await post_object.PostObjectHandler(self.garage, regions).handle(
                request, bucket_name)
        looked_up: list[Key] = []  # the key read for the signature check, read only once
        cached = endpoint.name not in _ADMIN_ENDPOINTS

        def lookup_secret(key_id: str) -> str | None:
            # Keys are a full-copy table: a local read, no network on the auth path.
            k = (self._keys.get(key_id.encode()) if cached
                 else self.garage.key_table.data.read_entry(key_id.encode(), b""))
            if k is None or k.deleted:
                return None
            looked_up.append(k)
            return k.secret

        auth = verify_request(
            SignedRequest(request.method, raw_path, raw_query, list(request.headers.items())),
            lookup_secret=lookup_secret, region=self.region, now=datetime.now(UTC),
            # As on AWS, GetBucketLocation may be signed for us-east-1: SDKs that were
            # given no region (minio-py) ask it that way to learn the bucket's region.
            # Unless strict_region, every request may: many apps never set a region.
            also_accept_regions=("us-east-1",) if endpoint.name == "GetBucketLocation"
            or not self.strict_region else ())
        if auth is None:
            raise errors.AccessDenied("anonymous access is not supported; sign your "
                                      "requests with an access key")
        api_key = looked_up[-1] if looked_up and looked_up[-1].key_id == auth.key_id else \
            self.garage.key_table.data.read_entry(auth.key_id.encode(), b"")
        if api_key is None or api_key.deleted:
            raise errors.InvalidAccessKeyId()
        ctx = ReqCtx(self.garage, request, endpoint, query, api_key, auth, bucket_name)
        if unsupported is not None:
            raise unsupported
        if endpoint.name not in IMPLEMENTED:
            raise errors.NotImplementedErr(f"{endpoint.name} is not implemented by pygarage")
        if endpoint.name in _CONDITIONAL_WRITES and any(
                h in request.headers for h in ("if-match", "if-none-match")):
            # Never ignore it: the client relies on the write not happening if it fails.
            raise errors.NotImplementedErr(f"Conditional writes (If-Match, If-None-Match) on "
                                           f"{endpoint.name} are not implemented by pygarage "
                                           "yet")
        if bucket_name is not None and endpoint.name != "CreateBucket":
            bucket = self._cached_bucket(bucket_name, api_key) if cached else None
            if bucket is None:
                bid = await BucketHelper(self.garage).resolve(bucket_name, api_key)
                bucket = await BucketHelper(self.garage).get(bid) if bid else None
            if bucket is None:
                raise errors.NoSuchBucket()
            ctx.bucket = bucket
            ctx.response_headers.update(cors.actual_headers(bucket, request.method,
                                                            lower_headers))
            r, w, o = api_key.permissions(bucket.id)
            allowed = (r if endpoint.name in READ_ENDPOINTS
                       else o if endpoint.name in OWNER_ENDPOINTS else w)
            if not allowed:
                raise errors.AccessDenied(f"access key {api_key.key_id} has no permission "
                                          f"for {endpoint.name} on bucket {bucket_name}")
        body = Body(request.content, lower_headers, auth)
        if request.headers.get("expect", "").lower() == "100-continue" \
                and request.version >= (1, 1):
            # Only now that the request is authorised: a rejected client never sends its body.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # type: ignore[attr-defined]
        resp = await self._dispatch(ctx, endpoint, body)
        if not resp.prepared:
            resp.headers.update(ctx.response_headers)
        return resp

    async def _preflight(self, bucket_name: str | None,
                         headers: dict[str, str]) -> web.Response:
        """CORS preflight: unauthenticated (browsers never sign it), so only a global alias
        names a bucket here."""
        bh = BucketHelper(self.garage)
        # Bucket names are ASCII; undecodable Host bytes arrive as surrogates.
        bid = await bh.resolve_global(bucket_name) \
            if bucket_name is not None and bucket_name.isascii() else None
        bucket = await bh.get(bid) if bid is not None else None
        return web.Response(status=200, headers=cors.preflight(bucket, headers,
                                                               named=bucket_name is not None))

    def _cached_bucket(self, name: str, key: Key) -> Bucket | None:
        """BucketHelper.resolve + get from the entry caches (None: not found there, ask the
        tables, which answer the same and raise the same errors)."""
        bid = key.local_alias(name)
        if bid is None:
            alias = self._aliases.get(name.encode())
            bid = alias.bucket_id() if alias is not None else None
        b = self._buckets.get(bid) if bid is not None else None
        return None if b is None or b.deleted else b

    async def _dispatch(self, ctx: ReqCtx, ep: Endpoint, body: Body) -> web.StreamResponse:
        n = ep.name

        async def xml_body() -> bytes:
            data = await body.read_all(MAX_XML_BODY)
            from .put import Written, new_checksummer, verify_body_checksums
            summer = new_checksummer(ctx, None)
            summer.update(data)
            verify_body_checksums(ctx, Written(len(data), summer.result(), None, data),
                                  body.trailers, None)
            return data

        simple = _SIMPLE.get(n)
        if simple is not None:
            return await simple(ctx)
        if n == "HeadBucket":
            return web.Response(status=200, headers={"x-amz-bucket-region": ctx.region})
        if n == "GetBucketLocation":
            return bucket_ep.handle_location(ctx)
        if n == "GetBucketVersioning":
            return bucket_ep.handle_get_versioning(ctx)
        if n == "CreateBucket":
            return await bucket_ep.handle_create_bucket(ctx, await xml_body())
        if n == "PutBucketWebsite":
            return await website.handle_put_website(ctx, await xml_body())
        if n == "PutBucketCors":
            return await cors.handle_put_cors(ctx, await xml_body())
        if n == "DeleteObjects":
            return await delete.handle_delete_objects(ctx, await xml_body())
        if n == "PutBucketLifecycle":
            return await lifecycle.handle_put(ctx, await xml_body())
        if n == "CompleteMultipartUpload":
            return await multipart.handle_complete(ctx, await xml_body())
        if n in ("PutObject", "UploadPart"):
            if "content-length" not in ctx.headers and \
                    "chunked" not in ctx.headers.get("transfer-encoding", "").lower():
                raise errors.MissingContentLength()
            if body.declared_length is not None and body.declared_length > MAX_PUT_SIZE:
                raise errors.EntityTooLarge(f"a single upload is limited to {MAX_PUT_SIZE} "
                                            "bytes: use a multipart upload")
        if n == "PutObject":
            sse = encryption.for_write(ctx.headers)
            if sse is not None:
                return await object_writer.put_encrypted(ctx, body.read, lambda: body.trailers,
                                                         sse)
            return await put.handle_put_object(ctx, body.read, lambda: body.trailers)
        if n == "UploadPart":
            return await multipart.handle_upload_part(ctx, body.read, lambda: body.trailers)
        raise errors.NotImplementedErr(f"{n} is not implemented by pygarage")


# Endpoints that need nothing but the request context (built once, not per request).
_SIMPLE: dict[str, Callable[[ReqCtx], Awaitable[web.StreamResponse]]] = {
    "ListBuckets": bucket_ep.handle_list_buckets,
    "DeleteBucket": bucket_ep.handle_delete_bucket,
    "ListObjects": lambda ctx: listing_api.handle_list_objects(ctx, v2=False),
    "ListObjectsV2": lambda ctx: listing_api.handle_list_objects(ctx, v2=True),
    "ListObjectVersions": listing_api.handle_list_object_versions,
    "ListMultipartUploads": listing_api.handle_list_multipart_uploads,
    "GetObject": lambda ctx: get.handle_get_object(ctx, head=False),
    "HeadObject": lambda ctx: get.handle_get_object(ctx, head=True),
    "GetObjectAttributes": object_attributes.handle_get_object_attributes,
    "CopyObject": copy_object.handle_copy_object,
    "DeleteObject": delete.handle_delete_object,
    "CreateMultipartUpload": multipart.handle_create,
    "UploadPartCopy": multipart.handle_upload_part_copy,
    "AbortMultipartUpload": multipart.handle_abort,
    "ListParts": multipart.handle_list_parts,
    "GetBucketLifecycle": lifecycle.handle_get,
    "DeleteBucketLifecycle": lifecycle.handle_delete,
    "GetBucketWebsite": website.handle_get_website,
    "DeleteBucketWebsite": website.handle_delete_website,
    "GetBucketCors": cors.handle_get_cors,
    "DeleteBucketCors": cors.handle_delete_cors,
}


def _helper_to_s3(e: HelperError) -> errors.S3Error:
    mapping: dict[str, Callable[[str], errors.S3Error]] = {
        "NoSuchBucket": errors.NoSuchBucket, "BucketNotEmpty": errors.BucketNotEmpty,
        "BucketAlreadyExists": errors.BucketAlreadyExists,
        "NoSuchAccessKey": errors.InvalidAccessKeyId,
    }
    return mapping.get(e.code, errors.InvalidRequest)(str(e))
