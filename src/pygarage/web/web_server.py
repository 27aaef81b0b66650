"""The website endpoint ([s3_web]): anonymous GET/HEAD of website-enabled buckets, the
bucket named by the Host header. Objects are read with the S3 GET code (Range,
conditionals); routing decisions come from pygarage.web.routing (pure)."""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from ..api.common import errors
from ..api.common.http import cut_connection
from ..api.common.wire import printable
from ..api.s3 import cors, get
from ..model.bucket_table import Bucket
from ..model.garage import Garage
from ..model.helpers.bucket import BucketHelper
from ..util import access_log, metrics
from ..util.errors import GarageError
from ..util.logsafe import logsafe
from .routing import (
    BadPath,
    Redirect,
    apply_rules,
    host_bucket_name,
    path_key,
    redirect_all,
    with_index,
)

log = logging.getLogger(__name__)

_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "POST", "DELETE", "PATCH"}
_EMPTY_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class WebError(Exception):
    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None):
        super().__init__(text)
        self.status, self.text, self.headers = status, text, headers or {}


@dataclass
class WebReadCtx:
    """An anonymous read of one key: what api/s3/get.py needs (see get.ReadCtx)."""

    garage: Garage
    request: web.BaseRequest
    bucket_id: bytes
    key: str
    headers: CIMultiDictProxy[str]
    # No response-* overrides, versionId or partNumber on a website: the query is ignored.
    query: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)


class WebServer:
    def __init__(self, garage: Garage):
        self.garage = garage
        assert garage.config.s3_web is not None
        self.root_domain = garage.config.s3_web.root_domain
        self.host_metrics = garage.config.s3_web.add_host_to_metrics

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        start = time.monotonic()
        method = request.method if request.method in _METHODS else "other"
        info = {"host": ""}
        resp: web.StreamResponse
        try:
            resp = await self._handle(request, info)
        except Exception as e:
            resp = self._error_response(request, e)
        elapsed = time.monotonic() - start
        host = info["host"] if self.host_metrics else ""
        metrics.web_requests.labels(method, host).inc()
        metrics.web_duration.labels(method, host).observe(elapsed)
        if resp.status >= 400:
            metrics.web_errors.labels(method, str(resp.status), host).inc()
        access_log.info(log, f"web {logsafe(request.host)} {logsafe(request.method)} "
                             f"{logsafe(request.path)} -> {resp.status} ({elapsed * 1000:.1f} ms)")
        if not resp.prepared and request.body_exists and not request.content.is_eof():
            resp.force_close()  # a body nobody reads: the stream is out of sync
        return resp

    def _error_response(self, request: web.BaseRequest, e: Exception) -> web.Response:
        if request.writer.output_size > 0:
            cut_connection(request, e, "web ")
            # Fall through: the answer below is never sent, but its status is what the log
            # line and the metrics report (503 for an unreadable block, not a 500).
        if isinstance(e, WebError):
            return _text(e.status, e.text, e.headers, request.method)
        if isinstance(e, errors.S3Error):
            return _text(e.status, e.message, e.headers, request.method)
        if isinstance(e, GarageError):
            log.warning("web %s %s: %s", logsafe(request.method), logsafe(request.path),
                        logsafe(e))
            return _text(503, "Service unavailable, retry later", {}, request.method)
        if isinstance(e, ConnectionError):
            return web.Response(status=499)  # the client went away (nginx's code)
        log.exception("web: internal error on %s %s", logsafe(request.method),
                      logsafe(request.path))
        return _text(500, "Internal error", {}, request.method)

    async def _bucket(self, request: web.BaseRequest, info: dict[str, str]
                      ) -> tuple[Bucket, dict[str, Any]]:
        host = request.headers.get("host")
        if not host:
            raise WebError(400, "Host header required")
        bh = BucketHelper(self.garage)
        name = host_bucket_name(host, self.root_domain)
        # Bucket names are ASCII; undecodable Host bytes arrive as surrogates.
        bid = await bh.resolve_global(name) if name.isascii() else None
        bucket = await bh.get(bid) if bid is not None else None
        # Unknown and non-website buckets look the same, as in Garage: nothing leaks.
        if bucket is None or bucket.website[1] is None:
            raise WebError(404, "Not found")
        info["host"] = host_bucket_name(host, None)  # the host name, without the port
        return bucket, bucket.website[1]

    async def _handle(self, request: web.BaseRequest,
                      info: dict[str, str]) -> web.StreamResponse:
        bucket, conf = await self._bucket(request, info)
        lower = {k.lower(): v for k, v in request.headers.items()}
        if request.method == "OPTIONS":
            return web.Response(status=200, headers=cors.preflight(bucket, lower))
        if request.method not in ("GET", "HEAD"):
            raise WebError(405, "Method not allowed: a website is read-only",
                           {"Allow": "GET, HEAD, OPTIONS"})
        head = request.method == "HEAD"
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            key = path_key(raw_path)
        except BadPath as e:
            raise WebError(400, str(e)) from None
        if conf.get("redirect_all"):
            return _redirect(redirect_all(conf, key, raw_query))
        cors_headers = cors.actual_headers(bucket, request.method, lower)
        index = conf.get("index") or "index.html"
        action = apply_rules(conf, key, after_404=False)
        if isinstance(action, Redirect):
            return _redirect(action)
        target, status = (action.key, action.status) if action else (with_index(key, index), None)
        try:
            return await self._get(request, bucket, target, head, status, cors_headers)
        except errors.NoSuchKey:
            if action is None and target == key and \
                    await self._exists(bucket, f"{key}/{index}"):
                # As AWS: `photos` missing but `photos/index.html` there -> the folder URL.
                return _redirect(Redirect(302, raw_path + "/"))
            after = apply_rules(conf, key, after_404=True)
            if isinstance(after, Redirect):
                return _redirect(after)
            if after is not None:
                try:
                    return await self._get(request, bucket, after.key, head, after.status,
                                           cors_headers)
                except errors.NoSuchKey:
                    pass
            return await self._error_document(request, bucket, conf, head, 404, "Not found")
        except errors.S3Error as e:
            if 400 <= e.status < 500:
                return await self._error_document(request, bucket, conf, head, e.status,
                                                  e.message, e.headers)
            raise

    async def _get(self, request: web.BaseRequest, bucket: Bucket, key: str, head: bool,
                   status: int | None, extra: dict[str, str],
                   headers: CIMultiDictProxy[str] | None = None) -> web.StreamResponse:
        ctx = WebReadCtx(self.garage, request, bucket.id, key,
                         request.headers if headers is None else headers,
                         response_headers=extra)
        resp = await get.handle_get_object(ctx, head, status=status, website=True)
        if not resp.prepared:
            resp.headers.update(extra)
        return resp

    async def _exists(self, bucket: Bucket, key: str) -> bool:
        obj = await self.garage.object_table.get(bucket.id, key.encode())
        return obj is not None and obj.current() is not None

    async def _error_document(self, request: web.BaseRequest, bucket: Bucket,
                              conf: dict[str, Any], head: bool, status: int, message: str,
                              headers: dict[str, str] | None = None) -> web.StreamResponse:
        """The bucket's error document, with the error's status; plain text without one.
        Never for HEAD (as Garage: no body to show)."""
        doc = (conf.get("error") or "").lstrip("/")
        if doc and not head:
            try:
                # A fresh read: the client's Range or conditionals were for another key.
                resp = await self._get(request, bucket, doc, False, status, {},
                                       _EMPTY_HEADERS)
                # As Garage: the error the document stands for, for whoever debugs.
                if not resp.prepared:
                    resp.headers["X-Garage-Error"] = _header_safe(message)
                return resp
            except errors.S3Error as e:
                log.warning("web: error document of bucket %s unreadable: %s",
                            bucket.id.hex()[:16], logsafe(e))
        raise WebError(status, message, headers)


def _redirect(r: Redirect) -> web.Response:
    return web.Response(status=r.status, headers={"Location": r.location})


def _header_safe(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:200]


def _text(status: int, text: str, headers: dict[str, str], method: str) -> web.Response:
    """Errors are pages for people (as Garage's), not S3 XML."""
    if method == "HEAD":
        return web.Response(status=status, headers=headers)
    # Messages may quote client input: a byte that is not UTF-8 (a lone surrogate here)
    # could not be encoded, a 500 instead of the error meant.
    body = f"<!doctype html>\n<title>{status}</title>\n<p>{html.escape(printable(text))}</p>\n"
    return web.Response(status=status, text=body, headers=headers, content_type="text/html",
                        charset="utf-8")
