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
from ...util.metrics import REGISTRY
from .cluster import get_cluster_health
from .errors import AdminError
from .router import admin_call

log = logging.getLogger(__name__)

_CORS = {"Access-Control-Allow-Origin": "*"}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, indent=2),
                        content_type="application/json", headers=_CORS)


def _token_ok(header: str | None, token: str | None) -> bool:
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


class AdminApiServer:
    def __init__(self, garage: Garage):
        self.garage = garage
        self.cfg = garage.config.admin

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except AdminError as e:
            return _json({"code": e.code, "message": e.message, "path": request.path,
                          "region": self.garage.config.s3_api.s3_region}, e.status)
        except Exception:
            log.exception("admin API error on %s", request.path)
            return _json({"code": "InternalError", "message": "internal error",
                          "path": request.path}, 500)

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
            name = domain.split(".", 1)[0] if "." in domain else domain
            bid = await BucketHelper(self.garage).resolve_global(name)
            if bid is None:
                raise AdminError(400, "InvalidRequest", f"no bucket for domain {domain}")
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
            raw = await request.read() if request.can_read_body else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                raise AdminError(400, "InvalidRequest", "body is not valid JSON") from None
            return _json(await admin_call(self.garage, endpoint, query, body))
        raise AdminError(404, "NotFound", f"no admin endpoint at {path}")
