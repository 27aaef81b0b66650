"""Admin API request bodies checked against the shape of each endpoint before any handler
runs (pure): a wrong type is a 400 naming the field, never a 500 deep in a handler.

A spec is a Python type (str, int, bool), a dict {field: spec} for an object (a field whose
name ends with "!" is required; unknown fields are ignored, as Garage does), ListOf(spec),
OneOf(spec, ...) or Exactly(value). null is accepted for optional fields (Option<...>).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import AdminError, bad_request


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class OneOf:
    options: tuple[Any, ...]


@dataclass(frozen=True)
class Exactly:
    value: Any


_PERMS = {"read": bool, "write": bool, "owner": bool}
_ROLE = {"id!": str, "remove": bool, "zone": str, "capacity": int, "tags": ListOf(str)}

BODIES: dict[str, Any] = {
    "CreateBucket": {"globalAlias": str,
                     "localAlias": {"accessKeyId!": str, "alias!": str, "allow": _PERMS}},
    "UpdateBucket": {"websiteAccess": {"enabled!": bool, "indexDocument": str,
                                       "errorDocument": str},
                     "quotas": {"maxSize": int, "maxObjects": int}},
    "CleanupIncompleteUploads": {"bucketId!": str, "olderThanSecs!": int},
    "AllowBucketKey": {"bucketId!": str, "accessKeyId!": str, "permissions!": _PERMS},
    "DenyBucketKey": {"bucketId!": str, "accessKeyId!": str, "permissions!": _PERMS},
    "AddBucketAlias": {"bucketId!": str, "globalAlias": str, "localAlias": str,
                       "accessKeyId": str},
    "RemoveBucketAlias": {"bucketId!": str, "globalAlias": str, "localAlias": str,
                          "accessKeyId": str},
    "CreateKey": {"name": str, "allow": {"createBucket": bool},
                  "deny": {"createBucket": bool}},
    "ImportKey": {"accessKeyId!": str, "secretAccessKey!": str, "name": str},
    "UpdateKey": {"name": str, "allow": {"createBucket": bool},
                  "deny": {"createBucket": bool}},
    "UpdateClusterLayout": {"roles": ListOf(_ROLE),
                            "parameters": {"zoneRedundancy!": OneOf((
                                Exactly("maximum"), {"atLeast!": int}))}},
    "ApplyClusterLayout": {"version!": int},
    "ListWorkers": {"busyOnly": bool, "errorOnly": bool},
    "GetBlockInfo": {"blockHash!": str},
    "GetWorkerInfo": {"id!": int},
    "GetWorkerVariable": {"variable": str},
    "SetWorkerVariable": {"variable!": str, "value!": str},
    "LaunchRepairOperation": {"repairType!": OneOf((str, {"scrub!": str}))},
    "RetryBlockResync": {"all": bool, "blockHashes": ListOf(str)},
    # Garage's list-bodied endpoints.
    "PurgeBlocks": ListOf(str),
    "ConnectClusterNodes": ListOf(str),
}


def check_body(endpoint: str, body: Any) -> None:
    """Raise a 400 AdminError if body does not fit the endpoint. Bodies of endpoints that
    take none must still be a JSON object or absent."""
    if body is None:
        body = {}
    _check(BODIES.get(endpoint, {}), body, "body")


def _type_name(spec: Any) -> str:
    if isinstance(spec, dict):
        return "an object"
    if isinstance(spec, ListOf):
        return "a list"
    if isinstance(spec, Exactly):
        return repr(spec.value)
    if isinstance(spec, OneOf):
        return " or ".join(_type_name(o) for o in spec.options)
    return {str: "a string", int: "an integer", bool: "true or false"}[spec]


def _fits(spec: Any, value: Any, where: str) -> bool:
    try:
        _check(spec, value, where)
        return True
    except AdminError:
        return False


def _check(spec: Any, value: Any, where: str) -> None:
    if isinstance(spec, OneOf):
        if not any(_fits(o, value, where) for o in spec.options):
            raise bad_request(f"{where} must be {_type_name(spec)}")
        return
    if isinstance(spec, Exactly):
        if value != spec.value:
            raise bad_request(f"{where} must be {spec.value!r}")
        return
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise bad_request(f"{where} must be a list")
        for i, item in enumerate(value):
            _check(spec.item, item, f"{where}[{i}]")
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise bad_request(f"{where} must be a JSON object")
        for name, sub in spec.items():
            required = name.endswith("!")
            name = name.rstrip("!")
            v = value.get(name)
            if v is None:
                if required:
                    raise bad_request(f"{where}.{name} is required")
                continue
            _check(sub, v, f"{where}.{name}")
        return
    # bool is an int in Python, not in JSON: true is not a number.
    if not isinstance(value, spec) or (spec is int and isinstance(value, bool)):
        raise bad_request(f"{where} must be {_type_name(spec)}")
