"""PostObject's policy document and form signature (pure, no I/O).

The policy is base64 JSON: {"expiration": ISO 8601, "conditions": [...]}. Conditions are
{"field": "value"} (exact match), ["eq", "$field", "value"], ["starts-with", "$field",
"prefix"] and ["content-length-range", min, max]. Field names are case-insensitive. Every
form field except policy, x-amz-signature, file and x-ignore-* must be allowed by some
condition, and every condition must hold, as on AWS. The signature is SigV4's:
hex(HMAC-SHA256(signing key, the base64 policy as sent)).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..common import errors
from ..common.signature.sigv4 import (
    _parse_amz_date,
    _parse_credential,
    sign,
    signatures_equal,
    signing_key,
)
from ..common.wire import strict_json

# Fields that no condition has to cover (AWS's list).
EXEMPT = {"policy", "x-amz-signature", "file"}
MAX_CONDITIONS = 1000


class InvalidPolicyDocument(errors.S3Error):
    status, code = 400, "InvalidPolicyDocument"
    default_message = "The content of the form does not meet the conditions specified in the " \
                      "policy document."


def _invalid(why: str) -> errors.S3Error:
    return InvalidPolicyDocument(f"Invalid Policy: {why}")


def _denied(why: str) -> errors.S3Error:
    return errors.AccessDenied(f"Invalid according to Policy: {why}")


@dataclass
class Policy:
    expiration: datetime
    # field -> [(op, value)], op "eq" or "starts-with"
    conditions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    length_range: tuple[int, int] | None = None
    raw: list[str] = field(default_factory=list)  # each condition as JSON, for messages


def decode_policy(policy_b64: str) -> Policy:
    try:
        raw = base64.b64decode(policy_b64.encode("ascii"), validate=True)
        doc = strict_json(raw)
    except (binascii.Error, ValueError, RecursionError):  # UnicodeError is a ValueError
        raise _invalid("Invalid JSON.") from None
    if not isinstance(doc, dict):
        raise _invalid("Invalid JSON.")
    exp = doc.get("expiration")
    if exp is None:
        raise _invalid("Policy missing expiration.")
    if not isinstance(exp, str):
        raise _invalid("Invalid 'expiration' value.")
    try:
        expiration = datetime.fromisoformat(exp)
    except ValueError:
        raise _invalid(f"Invalid 'expiration' value: '{exp}'") from None
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    conds = doc.get("conditions")
    if conds is None:
        raise _invalid("Policy missing conditions.")
    if not isinstance(conds, list) or len(conds) > MAX_CONDITIONS:
        raise _invalid("Invalid 'conditions' value.")
    policy = Policy(expiration)
    for c in conds:
        _add_condition(policy, c)
    return policy


def _add_condition(policy: Policy, c: Any) -> None:
    text = json.dumps(c, ensure_ascii=False)
    if isinstance(c, dict):
        if len(c) != 1:
            raise _invalid(f"Invalid Condition: {text}")
        (name, value), = c.items()
        if not isinstance(value, str):
            raise _invalid(f"Invalid Condition: {text}")
        policy.conditions.setdefault(name.lower(), []).append(("eq", value))
    elif isinstance(c, list) and len(c) == 3:
        op = c[0].lower() if isinstance(c[0], str) else None
        if op == "content-length-range":
            lo, hi = _length(c[1], text), _length(c[2], text)
            if policy.length_range is not None:  # several ranges: all must hold
                lo, hi = max(lo, policy.length_range[0]), min(hi, policy.length_range[1])
            policy.length_range = (lo, hi)
        elif op in ("eq", "starts-with"):
            name, value = c[1], c[2]
            if not isinstance(name, str) or not name.startswith("$") or \
                    not isinstance(value, str):
                raise _invalid(f"Invalid Condition: {text}")
            policy.conditions.setdefault(name[1:].lower(), []).append((op, value))
        else:
            raise _invalid(f"Invalid Condition: {text}")
    else:
        raise _invalid(f"Invalid Condition: {text}")
    policy.raw.append(text)


def _length(v: Any, text: str) -> int:
    if isinstance(v, bool):
        raise _invalid(f"Invalid Condition: {text}")
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 19:
        v = int(v)
    if not isinstance(v, int) or v < 0:
        raise _invalid(f"Invalid Condition: {text}")
    return v


def _holds(op: str, expected: str, value: str, name: str) -> bool:
    if op == "eq":
        return value == expected
    if name == "content-type":  # several types, comma-separated: each must match
        return all(v.strip().startswith(expected) for v in value.split(","))
    return value.startswith(expected)


def check_policy(policy: Policy, fields: Mapping[str, str], bucket: str, key: str,
                 now: datetime) -> None:
    """fields: form fields (lower-case names), without the file; key: after ${filename}."""
    if now >= policy.expiration:
        raise _denied("Policy expired.")
    values = {**fields, "bucket": bucket, "key": key}
    for name, conds in policy.conditions.items():
        value = values.get(name)
        for op, expected in conds:
            if value is None or not _holds(op, expected, value, name):
                shown = json.dumps([op, f"${name}", expected], ensure_ascii=False)
                raise _denied(f"Policy Condition failed: {shown}")
    extra = [n for n in fields if n not in EXEMPT and not n.startswith("x-ignore-")
             and n not in policy.conditions]
    if extra:
        raise _denied("Extra input fields: " + ", ".join(extra))


def check_length(policy: Policy, size: int, final: bool) -> None:
    """content-length-range, on the bytes received so far (final: the whole file)."""
    if policy.length_range is None:
        return
    lo, hi = policy.length_range
    if size > hi:
        raise errors.EntityTooLarge("Your proposed upload exceeds the maximum allowed size")
    if final and size < lo:
        raise errors.EntityTooSmall("Your proposed upload is smaller than the minimum "
                                    "allowed size")


@dataclass(frozen=True)
class FormAuth:
    key_id: str
    region: str


def verify_form_signature(fields: Mapping[str, str], regions: Sequence[str],
                          lookup_secret: Callable[[str], str | None]) -> FormAuth:
    """SigV4 POST: x-amz-algorithm, x-amz-credential, x-amz-date, x-amz-signature sign the
    policy field. -> the access key id."""
    for name in ("policy", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
                 "x-amz-signature"):
        if name not in fields:
            raise errors.InvalidArgument(f"Bucket POST must contain a field named '{name}'.  "
                                         "If it is specified, please check the order of the "
                                         "fields.")
    if fields["x-amz-algorithm"] != "AWS4-HMAC-SHA256":
        raise errors.InvalidArgument("Only AWS4-HMAC-SHA256 is supported for "
                                     "x-amz-algorithm.")
    cred = _parse_credential(fields["x-amz-credential"], regions, "s3")
    amz_date = fields["x-amz-date"]
    _parse_amz_date(amz_date)
    if amz_date[:8] != cred.date8:
        raise errors.InvalidArgument("x-amz-date does not match the date of "
                                     "x-amz-credential.")
    secret = lookup_secret(cred.key_id)
    if secret is None:
        raise errors.InvalidAccessKeyId()
    key = signing_key(secret, cred.date8, cred.region, "s3")
    if not signatures_equal(sign(key, fields["policy"]), fields["x-amz-signature"]):
        raise errors.SignatureDoesNotMatch()
    return FormAuth(cred.key_id, cred.region)
