"""Put/Get/DeleteBucketWebsite: the WebsiteConfiguration XML <-> the dict stored in the
bucket's `website` parameter (read by the web endpoint, pygarage.web).

Stored form (msgpack-friendly):
  {"index": str | None, "error": str | None,
   "redirect_all": {"host": str, "protocol": str | None} | None,
   "routing_rules": [{"condition": {"error_code": int | None, "prefix": str | None} | None,
                      "redirect": {"host", "protocol", "code", "replace_key",
                                   "replace_prefix"}}]}
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...model.helpers.bucket import BucketHelper
from ..common import errors
from .context import ReqCtx
from .xml import _children, _doc, _e, _one, _opt, _parse, _t

MAX_ROUTING_RULES = 1000  # Garage's bound: rules are scanned linearly on every request
REDIRECT_CODES = (301, 302, 303, 307, 308)
# Garage's extension (as Netlify): serve another key with this status, no redirect.
REWRITE_CODES = (200, 404)


def _text(elem: Any) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def _opt_text(parent: Any, name: str) -> str | None:
    el = _opt(parent, name)
    return None if el is None else _text(el)


def _opt_int(parent: Any, name: str) -> int | None:
    s = _opt_text(parent, name)
    if s is None:
        return None
    if not s.isascii() or not s.isdigit() or len(s) > 3:
        raise errors.MalformedXML()
    return int(s)


def _protocol(parent: Any) -> str | None:
    p = _opt_text(parent, "Protocol")
    if p is not None and p not in ("http", "https"):
        raise errors.InvalidArgument("Invalid protocol, protocol can be http or https. If not "
                                     "defined the protocol will be selected automatically.")
    return p


def parse_website(body: bytes) -> dict[str, Any]:
    """A WebsiteConfiguration body -> the stored dict, with AWS's (and Garage's) checks."""
    root = _parse(body, "WebsiteConfiguration")
    known = {"IndexDocument", "ErrorDocument", "RedirectAllRequestsTo", "RoutingRules"}
    if any(name not in known for name, _ in _children(root)):
        raise errors.MalformedXML()
    index_el, error_el = _opt(root, "IndexDocument"), _opt(root, "ErrorDocument")
    redirect_el, rules_el = _opt(root, "RedirectAllRequestsTo"), _opt(root, "RoutingRules")
    if redirect_el is not None:
        if index_el is not None or error_el is not None or rules_el is not None:
            raise errors.InvalidArgument("RedirectAllRequestsTo cannot be provided in "
                                         "conjunction with other Routing/Redirect "
                                         "configurations.")
        host = _text(_one(redirect_el, "HostName"))
        if not host:
            raise errors.InvalidArgument("The HostName of RedirectAllRequestsTo is empty.")
        return {"index": None, "error": None, "routing_rules": [],
                "redirect_all": {"host": host, "protocol": _protocol(redirect_el)}}
    if index_el is None:
        raise errors.InvalidArgument("A value for IndexDocument Suffix must be provided if "
                                     "RedirectAllRequestsTo is empty")
    suffix = _text(_one(index_el, "Suffix"))
    if not suffix:
        raise errors.InvalidArgument("A value for IndexDocument Suffix must be provided if "
                                     "RedirectAllRequestsTo is empty")
    if "/" in suffix:
        raise errors.InvalidArgument("The IndexDocument Suffix is not well formed")
    error_doc = None
    if error_el is not None:
        error_doc = _one(error_el, "Key").text or ""
        if not error_doc.strip():
            raise errors.InvalidArgument("The ErrorDocument Key is not well formed")
    rules = []
    if rules_el is not None:
        found = [el for name, el in _children(rules_el) if name == "RoutingRule"]
        if len(found) != len(list(rules_el)) or not found:
            raise errors.MalformedXML()
        if len(found) > MAX_ROUTING_RULES:
            raise errors.InvalidArgument(f"RoutingRules can't have more than "
                                         f"{MAX_ROUTING_RULES} rules")
        rules = [_parse_rule(el) for el in found]
    return {"index": suffix, "error": error_doc, "redirect_all": None, "routing_rules": rules}


def _parse_rule(el: Any) -> dict[str, Any]:
    cond: dict[str, Any] | None = None
    cond_el = _opt(el, "Condition")
    if cond_el is not None:
        code = _opt_int(cond_el, "HttpErrorCodeReturnedEquals")
        prefix_el = _opt(cond_el, "KeyPrefixEquals")
        prefix = None if prefix_el is None else (prefix_el.text or "")
        if code is None and prefix is None:
            raise errors.InvalidArgument("Condition cannot be empty. To redirect all requests "
                                         "without a condition, the condition element "
                                         "shouldn't be present.")
        if code is not None and code != 404:
            # Garage only ever sees 404s from the bucket: other codes could never match.
            raise errors.InvalidArgument("HttpErrorCodeReturnedEquals must be 404 or absent")
        cond = {"error_code": code, "prefix": prefix}
    red = _one(el, "Redirect")
    host, protocol = _opt_text(red, "HostName"), _protocol(red)
    code = _opt_int(red, "HttpRedirectCode")
    key_el, prefix_el = _opt(red, "ReplaceKeyWith"), _opt(red, "ReplaceKeyPrefixWith")
    if key_el is not None and prefix_el is not None:
        raise errors.InvalidArgument("You can only define ReplaceKeyPrefix or ReplaceKey but "
                                     "not both.")
    if host is None and protocol is None and code is None and key_el is None \
            and prefix_el is None:
        raise errors.InvalidArgument("Redirect must have at least one of HostName, Protocol, "
                                     "HttpRedirectCode, ReplaceKeyPrefixWith or ReplaceKeyWith")
    # AWS answers 301 by default; Garage 302, which a browser does not cache forever.
    code = 302 if code is None else code
    if code in REWRITE_CODES:
        if host is not None or protocol is not None:
            raise errors.InvalidArgument(f"an HttpRedirectCode of {code} is not acceptable "
                                         "alongside HostName or Protocol")
    elif code not in REDIRECT_CODES:
        raise errors.InvalidArgument("The provided HTTP redirect code is not valid. It "
                                     "should be a string containing a number.")
    elif host is None and protocol is not None:
        raise errors.InvalidArgument("HostName must be set if Protocol is set")
    return {"condition": cond,
            "redirect": {"host": host or None, "protocol": protocol, "code": code,
                         "replace_key": None if key_el is None else (key_el.text or ""),
                         "replace_prefix": None if prefix_el is None
                         else (prefix_el.text or "")}}


def website_xml(conf: dict[str, Any]) -> bytes:
    ra = conf.get("redirect_all")
    if ra:
        return _doc("WebsiteConfiguration", _e("RedirectAllRequestsTo", _t("HostName", ra["host"]),
                                               _t("Protocol", ra.get("protocol"))))
    parts = [_e("IndexDocument", _t("Suffix", conf.get("index") or "index.html"))]
    if conf.get("error"):
        parts.append(_e("ErrorDocument", _t("Key", conf["error"])))
    rules = []
    for r in conf.get("routing_rules") or []:
        c, d = r["condition"], r["redirect"]
        cond = _e("Condition", _t("HttpErrorCodeReturnedEquals", c["error_code"]),
                  _t("KeyPrefixEquals", c["prefix"])) if c else ""
        rules.append(_e("RoutingRule", cond, _e(
            "Redirect", _t("HostName", d["host"]), _t("Protocol", d["protocol"]),
            _t("HttpRedirectCode", d["code"]), _t("ReplaceKeyPrefixWith", d["replace_prefix"]),
            _t("ReplaceKeyWith", d["replace_key"]))))
    if rules:
        parts.append(_e("RoutingRules", *rules))
    return _doc("WebsiteConfiguration", *parts)


async def handle_get_website(ctx: ReqCtx) -> web.Response:
    assert ctx.bucket is not None
    conf = ctx.bucket.website[1]
    if conf is None:
        raise errors.NoSuchWebsiteConfiguration()
    return web.Response(body=website_xml(conf), content_type="application/xml")


async def handle_put_website(ctx: ReqCtx, body: bytes) -> web.Response:
    assert ctx.bucket is not None
    await BucketHelper(ctx.garage).set_website(ctx.bucket, parse_website(body))
    return web.Response(status=200)


async def handle_delete_website(ctx: ReqCtx) -> web.Response:
    assert ctx.bucket is not None
    await BucketHelper(ctx.garage).set_website(ctx.bucket, None)
    return web.Response(status=204)
