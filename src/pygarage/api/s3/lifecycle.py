"""Put/Get/DeleteBucketLifecycleConfiguration: the XML codec (pure) and the handlers.

Supported, as in Garage: Expiration (Days or Date), AbortIncompleteMultipartUpload, and
filters on Prefix, ObjectSizeGreaterThan, ObjectSizeLessThan (several under And); the
legacy Rule-level Prefix too. S3 elements we do not act on (transitions, noncurrent
versions, tags, expired delete markers) answer 501 NotImplemented rather than being stored
and ignored; elements S3 does not know are MalformedXML. The rules are applied by the daily
lifecycle worker (model/s3/lifecycle_worker.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from aiohttp import web

from ...model.helpers.bucket import BucketHelper
from ...model.lifecycle import LifecycleRule, parse_lifecycle_date, stored_rules
from ..common import errors
from .context import ReqCtx
from .xml import _children, _doc, _e, _opt, _parse, _t

MAX_RULES = 1000
MAX_ID_LEN = 255
MAX_DAYS = 2**31 - 1
MAX_SIZE = 2**63 - 1

# Valid S3 elements whose behaviour pygarage does not implement.
_NOT_IMPLEMENTED = {
    "Rule": {"Transition", "NoncurrentVersionTransition", "NoncurrentVersionExpiration"},
    "Filter": {"Tag"}, "And": {"Tag"}, "Expiration": {"ExpiredObjectDeleteMarker"},
}
_ALLOWED = {
    "LifecycleConfiguration": {"Rule"},
    "Rule": {"ID", "Status", "Filter", "Prefix", "Expiration",
             "AbortIncompleteMultipartUpload"},
    "Filter": {"Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan", "And"},
    "And": {"Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan"},
    "Expiration": {"Days", "Date"},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation"},
}


def _check_children(elem: ET.Element, what: str) -> None:
    for name, _ in _children(elem):
        if name in _NOT_IMPLEMENTED.get(what, set()):
            raise errors.NotImplementedErr(
                f"Lifecycle {what}/{name} is not implemented by pygarage")
        if name not in _ALLOWED[what]:
            raise errors.MalformedXML(f"unexpected element <{name}> in <{what}>")
    if elem.text and elem.text.strip():
        raise errors.MalformedXML(f"unexpected text in <{what}>")


def _text(elem: ET.Element) -> str:
    if len(elem):
        raise errors.MalformedXML(f"<{elem.tag}> must hold text")
    return elem.text or ""


def _int(elem: ET.Element, lo: int, hi: int, message: str) -> int:
    text = _text(elem).strip()
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 20:
        raise errors.MalformedXML(f"not an integer: <{elem.tag}>")
    n = int(text)
    if not lo <= n <= hi:
        raise errors.InvalidArgument(message)
    return n


def _conditions(elem: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    p = _opt(elem, "Prefix")
    if p is not None:
        out["prefix"] = _text(p)
    for tag, field in (("ObjectSizeGreaterThan", "size_gt"), ("ObjectSizeLessThan", "size_lt")):
        e = _opt(elem, tag)
        if e is not None:
            out[field] = _int(e, 0, MAX_SIZE, f"{tag} must be a non-negative integer")
    return out


def _filter(elem: ET.Element) -> dict[str, Any]:
    _check_children(elem, "Filter")
    conds = _conditions(elem)
    and_el = _opt(elem, "And")
    if and_el is not None:
        if conds:
            raise errors.MalformedXML("<Filter> cannot hold both <And> and another condition")
        _check_children(and_el, "And")
        conds = _conditions(and_el)
    elif len(conds) > 1:
        raise errors.MalformedXML("several <Filter> conditions must be wrapped in <And>")
    gt, lt = conds.get("size_gt"), conds.get("size_lt")
    if gt is not None and lt is not None and gt >= lt:
        raise errors.InvalidArgument("ObjectSizeGreaterThan must be less than "
                                     "ObjectSizeLessThan")
    return conds


def _expiration(elem: ET.Element) -> dict[str, Any]:
    _check_children(elem, "Expiration")
    days, day = _opt(elem, "Days"), _opt(elem, "Date")
    if (days is None) == (day is None):
        raise errors.MalformedXML("<Expiration> needs either <Days> or <Date>")
    if days is not None:
        return {"expiration_days": _int(
            days, 1, MAX_DAYS, "'Days' for Expiration action must be a positive integer")}
    assert day is not None
    try:
        d = parse_lifecycle_date(_text(day))
    except ValueError as e:
        if "midnight" in str(e):
            raise errors.InvalidArgument("'Date' must be at midnight GMT") from None
        raise errors.MalformedXML(f"invalid <Date>: {e}") from None
    return {"expiration_date": d.isoformat()}


def _rule(elem: ET.Element) -> LifecycleRule:
    _check_children(elem, "Rule")
    id_el = _opt(elem, "ID")
    rule_id = _text(id_el) if id_el is not None else None
    if rule_id is not None and len(rule_id) > MAX_ID_LEN:
        raise errors.InvalidArgument(f"ID length should not exceed allowed limit of "
                                     f"{MAX_ID_LEN}")
    status_el = _opt(elem, "Status")
    status = _text(status_el).strip() if status_el is not None else None
    if status not in ("Enabled", "Disabled"):
        raise errors.MalformedXML("<Status> must be Enabled or Disabled")
    fields: dict[str, Any] = {}
    filter_el, prefix_el = _opt(elem, "Filter"), _opt(elem, "Prefix")
    if filter_el is not None and prefix_el is not None:
        raise errors.MalformedXML("a rule cannot have both <Filter> and <Prefix>")
    if filter_el is not None:
        fields.update(_filter(filter_el))
    elif prefix_el is not None:
        fields["prefix"] = _text(prefix_el)
    exp_el = _opt(elem, "Expiration")
    if exp_el is not None:
        fields.update(_expiration(exp_el))
    abort_el = _opt(elem, "AbortIncompleteMultipartUpload")
    if abort_el is not None:
        _check_children(abort_el, "AbortIncompleteMultipartUpload")
        days_el = _opt(abort_el, "DaysAfterInitiation")
        if days_el is None:
            raise errors.MalformedXML("<AbortIncompleteMultipartUpload> needs "
                                      "<DaysAfterInitiation>")
        fields["abort_mpu_days"] = _int(
            days_el, 1, MAX_DAYS,
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a "
            "positive integer")
        if "size_gt" in fields or "size_lt" in fields:
            # An incomplete upload has no size: the filter could never be honoured.
            raise errors.InvalidRequest("AbortIncompleteMultipartUpload cannot be specified "
                                        "with an object size filter")
    if exp_el is None and abort_el is None:
        raise errors.InvalidRequest("At least one action needs to be specified in a rule")
    return LifecycleRule(rule_id, status == "Enabled", **fields)


def parse_lifecycle_xml(body: bytes) -> list[LifecycleRule]:
    """(pure) A PutBucketLifecycleConfiguration body -> validated rules, or the S3 error."""
    root = _parse(body, "LifecycleConfiguration")
    _check_children(root, "LifecycleConfiguration")
    elems = [c for _, c in _children(root)]
    if not elems:
        raise errors.MalformedXML("a lifecycle configuration needs at least one <Rule>")
    if len(elems) > MAX_RULES:
        raise errors.InvalidRequest(f"a lifecycle configuration has at most {MAX_RULES} rules")
    rules = [_rule(e) for e in elems]
    ids = [r.id for r in rules if r.id is not None]
    if len(ids) != len(set(ids)):
        raise errors.InvalidArgument("Rule ID must be unique. Found same ID for more than "
                                     "one rule")
    return rules


def _filter_xml(r: LifecycleRule) -> str:
    conds = [_t("Prefix", r.prefix) if r.prefix is not None else "",
             _t("ObjectSizeGreaterThan", r.size_gt), _t("ObjectSizeLessThan", r.size_lt)]
    present = [c for c in conds if c]
    if len(present) > 1:
        return _e("Filter", _e("And", *present))
    return _e("Filter", *present)


def lifecycle_xml(rules: list[LifecycleRule]) -> bytes:
    """(pure) The GetBucketLifecycleConfiguration body."""
    out = []
    for r in rules:
        exp = ""
        if r.expiration_days is not None:
            exp = _e("Expiration", _t("Days", r.expiration_days))
        elif r.expiration_date is not None:
            exp = _e("Expiration", _t("Date", f"{r.expiration_date}T00:00:00.000Z"))
        abort = "" if r.abort_mpu_days is None else _e(
            "AbortIncompleteMultipartUpload", _t("DaysAfterInitiation", r.abort_mpu_days))
        out.append(_e("Rule", _t("ID", r.id), _filter_xml(r),
                      _t("Status", "Enabled" if r.enabled else "Disabled"), exp, abort))
    return _doc("LifecycleConfiguration", *out)


async def handle_get(ctx: ReqCtx) -> web.Response:
    assert ctx.bucket is not None
    if ctx.bucket.lifecycle[1] is None:
        raise errors.NoSuchLifecycleConfiguration()
    return web.Response(body=lifecycle_xml(stored_rules(ctx.bucket.lifecycle[1])),
                        content_type="application/xml")


async def handle_put(ctx: ReqCtx, body: bytes) -> web.Response:
    rules = parse_lifecycle_xml(body)
    bh = BucketHelper(ctx.garage)
    await bh.set_lifecycle(await bh.get_existing(ctx.bucket_id),
                           [r.to_stored() for r in rules])
    return web.Response(status=200)


async def handle_delete(ctx: ReqCtx) -> web.Response:
    bh = BucketHelper(ctx.garage)
    await bh.set_lifecycle(await bh.get_existing(ctx.bucket_id), None)
    return web.Response(status=204)
