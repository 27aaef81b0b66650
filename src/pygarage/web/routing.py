"""What a website request asks for (pure): Host -> bucket name, path -> key, and what the
bucket's website configuration (see api/s3/website.py) makes of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from ..api.common.domains import host_to_bucket


class BadPath(Exception):
    pass


def host_bucket_name(host: str, root_domain: str | None) -> str:
    """`<bucket><root_domain>` -> bucket; any other host is itself the name (a global alias
    equal to the host name). The port is ignored, names are case-insensitive."""
    h = host.strip().lower()
    if h.startswith("["):
        h = h[: h.find("]") + 1]
    elif h.count(":") == 1:
        h = h.rsplit(":", 1)[0]
    h = h.rstrip(".")
    if root_domain:
        b = host_to_bucket(h, root_domain)
        if b is not None:
            return b
    return h


def path_key(raw_path: str) -> str:
    """The percent-decoded path without its leading '/'."""
    if not raw_path.startswith("/"):
        raise BadPath("path must start with /")
    try:
        return unquote_to_bytes(raw_path[1:]).decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("path is not valid UTF-8") from None


def with_index(key: str, index: str) -> str:
    """Keys naming a folder (the root, or ending in '/') get the index document."""
    return key + index if key == "" or key.endswith("/") else key


@dataclass(frozen=True)
class Redirect:
    status: int
    location: str


@dataclass(frozen=True)
class Serve:
    key: str
    status: int | None = None  # None: the object's own status (200, 206, 304)


def redirect_all(conf: dict[str, Any], key: str, raw_query: str) -> Redirect:
    ra = conf["redirect_all"]
    loc = f"{ra.get('protocol') or 'http'}://{ra['host']}/{_quote(key)}"
    return Redirect(301, loc + (f"?{raw_query}" if raw_query else ""))


def apply_rules(conf: dict[str, Any], key: str, after_404: bool) -> Redirect | Serve | None:
    """The first routing rule matching `key`: before the lookup, rules without an error
    condition; after a 404, rules conditioned on it."""
    for rule in conf.get("routing_rules") or []:
        cond = rule["condition"] or {"error_code": None, "prefix": None}
        if (cond["error_code"] == 404) != after_404:
            continue
        prefix = cond["prefix"] or ""
        if not key.startswith(prefix):
            continue
        red = rule["redirect"]
        if red["replace_key"] is not None:
            target = red["replace_key"]
        elif red["replace_prefix"] is not None:
            target = red["replace_prefix"] + key[len(prefix):]
        else:
            target = key
        if red["code"] in (200, 404):
            return Serve(with_index(target, conf.get("index") or "index.html"), red["code"])
        if red["host"]:
            loc = f"{red['protocol'] or 'http'}://{red['host']}/{_quote(target)}"
        else:
            loc = "/" + _quote(target)
        return Redirect(red["code"], loc)
    return None


def _quote(key: str) -> str:
    return quote(key, safe="/~!$&'()*+,;=:@")
