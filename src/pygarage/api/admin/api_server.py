"""The admin HTTP API: /health, /metrics, /check and /v2/<Endpoint> with a bearer token
(compared in constant time)."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ...model.garage import Garage
from ...model.helpers.bucket import BucketHelper
from ...util.errors import GarageError
from ...util.logsafe import logsafe
from ...util.metrics import REGISTRY
from ..common.domains import host_to_bucket
from ..common.wire import strict_json
from .cluster import get_cluster_health
from .errors import AdminError
from .router import admin_call

log = logging.getLogger(__name__)

_CORS = {"Access-Control-Allow-Origin": "*"}
MAX_BODY = 1024 * 1024  # admin bodies are small JSON documents


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, indent=2),
                        content_type="application/json", headers=_CORS)


def _token_ok(header: str | None, token: str | None) -> bool:
    if not token or not header or not header.startswith("Bearer "):
        return False
    # surrogateescape: a header that is not UTF-8 is just a wrong token, not an error.
    return hmac.compare_digest(header[7:].strip().encode("utf-8", "surrogateescape"),
                               token.encode())


async def _read_body(request: web.BaseRequest) -> bytes:
    """The whole body, refused (413) beyond MAX_BODY without reading it all."""
    if not request.can_read_body:
        return b""
    if (request.content_length or 0) > MAX_BODY:
        raise AdminError(413, "PayloadTooLarge", f"admin request bodies are limited to "
                                                 f"{MAX_BODY} bytes")
    buf = bytearray()
    while chunk := await request.content.read(65536):
        buf += chunk
        if len(buf) > MAX_BODY:
            raise AdminError(413, "PayloadTooLarge", f"admin request bodies are limited to "
                                                     f"{MAX_BODY} bytes")
    return bytes(buf)


class AdminApiServer:
    def __init__(self, garage: Garage):
        self.garage = garage
        self.cfg = garage.config.admin

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        resp: web.StreamResponse
        try:
            resp = await self._handle(request)
        except AdminError as e:
            resp = _json({"code": e.code, "message": e.message, "path": request.path,
                          "region": self.garage.config.s3_api.s3_region}, e.status)
        except GarageError as e:  # quorum not reached, layout not ready: retry later
            log.warning("admin API %s: %s", logsafe(request.path), logsafe(str(e)))
            resp = _json({"code": "ServiceUnavailable", "message": str(e),
                          "path": request.path}, 503)
        except Exception:
            log.exception("admin API error on %s", logsafe(request.path))
            resp = _json({"code": "InternalError", "message": "internal error",
                          "path": request.path}, 500)
        if request.body_exists and not request.content.is_eof():
            resp.force_close()  # a body left unread (refused): the stream is out of sync
        return resp

    async def _serves_domain(self, domain: str) -> bool:
        """As Garage: `<bucket><s3_api.root_domain>` for any bucket (vhost-style S3);
        `<bucket><s3_web.root_domain>`, or a global alias equal to the whole domain, only
        for a bucket with website access enabled."""
        cfg = self.garage.config
        name, website_only = domain, True
        s3_root, web_root = cfg.s3_api.root_domain, cfg.s3_web.root_domain if cfg.s3_web \
            else None
        if s3_root and (b := host_to_bucket(domain, s3_root)) is not None:
            name, website_only = b, False
        elif web_root and (b := host_to_bucket(domain, web_root)) is not None:
            name = b
        bh = BucketHelper(self.garage)
        bid = await bh.resolve_global(name)
        bucket = await bh.get(bid) if bid is not None else None
        if bucket is None:
            return False
        return not website_only or bucket.website[1] is not None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if request.method == "OPTIONS":
            return web.Response(headers={**_CORS, "Access-Control-Allow-Methods":
                                         "OPTIONS,GET,POST",
                                         "Access-Control-Allow-Headers":
                                         "authorization,content-type"})
        if path == "/health":
            h = get_cluster_health(self.garage)
            if h["status"] == "healthy":
                return web.Response(text="Garage is fully operational\n")
            if h["status"] == "degraded":
                return web.Response(text="Garage is operational but some storage nodes are "
                                         "unavailable\n")
            return web.Response(status=503, text="Garage is not operational: some partitions "
                                                 "lack a quorum (is the layout applied?)\n")
        if path == "/check":
            domain = request.query.get("domain", "")
            if not domain:
                raise AdminError(400, "InvalidRequest", "missing domain")
            if not await self._serves_domain(domain):
                raise AdminError(400, "InvalidRequest",
                                 f"Domain '{domain}' is not managed by Garage")
            return web.Response(text=f"Domain '{domain}' is managed by Garage\n")
        if path == "/metrics":
            tok = self.cfg.metrics_token
            if (tok or self.cfg.metrics_require_token) and \
                    not _token_ok(request.headers.get("authorization"), tok):
                raise AdminError(403, "AccessDenied", "invalid or missing metrics token")
            return web.Response(body=generate_latest(REGISTRY),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})
        if not self.cfg.admin_token:
            raise AdminError(403, "AccessDenied", "admin API access is disabled: set "
                                                  "[admin] admin_token in the config")
        if not _token_ok(request.headers.get("authorization"), self.cfg.admin_token):
            raise AdminError(403, "AccessDenied", "invalid or missing admin token")
        if path.startswith("/v2/"):
            endpoint = path[4:]
            query = dict(parse_qsl(request.query_string, keep_blank_values=True))
            raw = await _read_body(request)
            try:
                body = strict_json(raw) if raw else None
            except (ValueError, RecursionError):  # not UTF-8, not JSON, or absurdly nested
                raise AdminError(400, "InvalidRequest", "body is not valid JSON") from None
            return _json(await admin_call(self.garage, endpoint, query, body))
        raise AdminError(404, "NotFound", f"no admin endpoint at {path}")
