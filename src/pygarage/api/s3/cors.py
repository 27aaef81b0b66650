"""Bucket CORS: Put/Get/DeleteBucketCors, preflight (OPTIONS) answers and the
Access-Control-* headers of actual responses. Shared by the S3 and web endpoints.

A rule is stored as {"id", "max_age", "origins", "methods", "headers", "expose"}.
Matching is pure; the handlers at the end do the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ...model.bucket_table import Bucket
from ...model.helpers.bucket import BucketHelper
from ..common import errors
from .context import ReqCtx
from .xml import _children, _doc, _e, _parse, _t

ALLOWED_METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")
MAX_RULES = 100  # AWS's limit
MAX_ID = 255

AccessForbidden = errors._err("AccessForbidden", 403, message="CORSResponse: This CORS request "
                              "is not allowed. This is usually because the evalution of Origin, "
                              "request method / Access-Control-Request-Method or "
                              "Access-Control-Request-Headers are not whitelisted by the "
                              "resource's CORS spec.")
BadRequest = errors._err("BadRequest", 400, message="Insufficient information. Origin request "
                         "header needed.")

_VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


# ---------------------------------------------------------------- XML

def parse_cors(body: bytes) -> list[dict[str, Any]]:
    root = _parse(body, "CORSConfiguration")
    rules = []
    for name, el in _children(root):
        if name != "CORSRule":
            raise errors.MalformedXML()
        rules.append(_parse_rule(el))
    if not rules:
        raise errors.MalformedXML()
    if len(rules) > MAX_RULES:
        raise errors.InvalidRequest(f"The CORS configuration can have at most {MAX_RULES} "
                                    "rules")
    return rules


def _parse_rule(el: Any) -> dict[str, Any]:
    known = {"ID", "MaxAgeSeconds", "AllowedOrigin", "AllowedMethod", "AllowedHeader",
             "ExposeHeader"}
    lists: dict[str, list[str]] = {k: [] for k in known}
    for name, child in _children(el):
        if name not in known:
            raise errors.MalformedXML()
        lists[name].append((child.text or "").strip())
    if len(lists["ID"]) > 1 or len(lists["MaxAgeSeconds"]) > 1:
        raise errors.MalformedXML()
    if not lists["AllowedOrigin"] or not lists["AllowedMethod"]:
        raise errors.MalformedXML()
    rule_id = lists["ID"][0] if lists["ID"] else None
    if rule_id is not None and len(rule_id) > MAX_ID:
        raise errors.InvalidArgument(f"ID length should not exceed allowed limit of {MAX_ID}")
    max_age = None
    if lists["MaxAgeSeconds"]:
        s = lists["MaxAgeSeconds"][0]
        if not s.isascii() or not s.lstrip("-").isdigit() or len(s) > 10:
            raise errors.MalformedXML()
        max_age = int(s)
    for m in lists["AllowedMethod"]:
        if m not in ALLOWED_METHODS:
            raise errors.InvalidRequest(f"Found unsupported HTTP method in CORS config. "
                                        f"Unsupported method is {m}")
    for o in lists["AllowedOrigin"]:
        if o.count("*") > 1:
            raise errors.InvalidRequest(f'AllowedOrigin "{o}" can not have more than one '
                                        "wildcard.")
    for h in lists["AllowedHeader"]:
        if h.count("*") > 1:
            raise errors.InvalidRequest(f'AllowedHeader "{h}" can not have more than one '
                                        "wildcard.")
    for h in lists["ExposeHeader"]:
        if "*" in h:
            raise errors.InvalidRequest(f'ExposeHeader "{h}" contains wildcard. We currently '
                                        "do not support wildcard for ExposeHeader.")
    return {"id": rule_id, "max_age": max_age, "origins": lists["AllowedOrigin"],
            "methods": lists["AllowedMethod"], "headers": lists["AllowedHeader"],
            "expose": lists["ExposeHeader"]}


def cors_xml(rules: list[dict[str, Any]]) -> bytes:
    out = []
    for r in rules:
        out.append(_e("CORSRule", _t("ID", r.get("id")),
                      *(_t("AllowedOrigin", o) for o in r["origins"]),
                      *(_t("AllowedMethod", m) for m in r["methods"]),
                      *(_t("AllowedHeader", h) for h in r["headers"]),
                      *(_t("ExposeHeader", h) for h in r["expose"]),
                      _t("MaxAgeSeconds", r.get("max_age"))))
    return _doc("CORSConfiguration", *out)


# ---------------------------------------------------------------- matching (pure)

def _glob(pattern: str, value: str) -> bool:
    """AWS patterns have at most one '*', matching any (possibly empty) string."""
    if "*" not in pattern:
        return pattern == value
    head, _, tail = pattern.partition("*")
    return len(value) >= len(head) + len(tail) and value.startswith(head) \
        and value.endswith(tail)


def _requested_headers(value: str | None) -> list[str]:
    return [h.strip().lower() for h in (value or "").split(",") if h.strip()]


def find_rule(rules: list[dict[str, Any]] | None, origin: str, method: str,
              request_headers: list[str]) -> dict[str, Any] | None:
    """The first rule allowing this origin, method and every requested header."""
    for r in rules or []:
        if not any(_glob(o, origin) for o in r["origins"]):
            continue
        if method not in r["methods"]:
            continue
        allowed = [h.lower() for h in r["headers"]]
        if all(any(_glob(a, h) for a in allowed) for h in request_headers):
            return r
    return None


def rule_headers(rule: dict[str, Any], origin: str,
                 request_headers: list[str] | None = None) -> dict[str, str]:
    """The Access-Control-* headers a matching rule puts on an answer."""
    h = {"Access-Control-Allow-Origin": "*" if "*" in rule["origins"] else origin,
         "Access-Control-Allow-Methods": ", ".join(rule["methods"]), "Vary": _VARY}
    if request_headers:
        h["Access-Control-Allow-Headers"] = ", ".join(request_headers)
    if rule["expose"]:
        h["Access-Control-Expose-Headers"] = ", ".join(rule["expose"])
    if rule.get("max_age") is not None:
        h["Access-Control-Max-Age"] = str(rule["max_age"])
    return h


def actual_headers(bucket: Bucket | None, method: str, headers: Mapping[str, str]
                   ) -> dict[str, str]:
    """CORS headers for a non-preflight answer: none without an Origin or a matching rule."""
    origin = headers.get("origin")
    if bucket is None or origin is None:
        return {}
    rule = find_rule(bucket.cors[1], origin, method, [])
    return rule_headers(rule, origin) if rule is not None else {}


def preflight(bucket: Bucket | None, headers: Mapping[str, str], *,
              named: bool = True) -> dict[str, str]:
    """Headers of the 200 answer to a preflight; raises the S3 error AWS gives otherwise.
    bucket None, as Garage: no bucket named (ListBuckets: GET allowed), or a name that is
    no global alias (maybe a key's local alias, unknown before authentication: allowed);
    the actual answer still carries CORS headers only if the bucket's rules allow it."""
    origin = headers.get("origin")
    if not origin:
        raise BadRequest()
    method = headers.get("access-control-request-method", "")
    if method not in ALLOWED_METHODS:
        raise BadRequest(f"Invalid Access-Control-Request-Method: {method}")
    req_headers = _requested_headers(headers.get("access-control-request-headers"))
    if bucket is None:
        return {"Access-Control-Allow-Origin": "*", "Vary": _VARY,
                "Access-Control-Allow-Methods": "*" if named else "GET",
                "Access-Control-Allow-Headers": "*"}
    if not bucket.cors[1]:
        raise AccessForbidden("CORSResponse: CORS is not enabled for this bucket.")
    rule = find_rule(bucket.cors[1], origin, method, req_headers)
    if rule is None:
        raise AccessForbidden()
    return rule_headers(rule, origin, req_headers)


# ---------------------------------------------------------------- handlers

async def handle_get_cors(ctx: ReqCtx) -> web.Response:
    assert ctx.bucket is not None
    rules = ctx.bucket.cors[1]
    if not rules:
        raise errors.NoSuchCORSConfiguration()
    return web.Response(body=cors_xml(rules), content_type="application/xml")


async def handle_put_cors(ctx: ReqCtx, body: bytes) -> web.Response:
    assert ctx.bucket is not None
    await BucketHelper(ctx.garage).set_cors(ctx.bucket, parse_cors(body))
    return web.Response(status=200)


async def handle_delete_cors(ctx: ReqCtx) -> web.Response:
    assert ctx.bucket is not None
    await BucketHelper(ctx.garage).set_cors(ctx.bucket, None)
    return web.Response(status=204)
