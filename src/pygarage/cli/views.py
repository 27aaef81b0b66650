"""Rendering of buckets and access keys (`bucket list/info`, `key list/info`)."""

from __future__ import annotations

from typing import Any

from pygarage.cli.fmt import (
    format_bytes,
    format_bytes_binary,
    format_date,
    format_perms,
    format_table,
    short_id,
)

__all__ = [
    "render_bucket_info",
    "render_bucket_list",
    "render_key_info",
    "render_key_list",
    "render_object",
]


def render_bucket_list(buckets: list[dict[str, Any]]) -> str:
    rows = []
    for b in sorted(buckets, key=lambda b: (sorted(b.get("globalAliases") or [""]), b["id"])):
        local = [f"{a['accessKeyId']}:{a['alias']}" for a in b.get("localAliases") or []]
        rows.append(
            [
                short_id(b["id"]),
                format_date(b.get("created"))[:10],
                ",".join(b.get("globalAliases") or []),
                ",".join(local),
            ]
        )
    return format_table(["ID", "Created", "Global aliases", "Local aliases"], rows)


def _of_quota(used: int, quota: int | None) -> str:
    """`  (40% of quota)` after a usage figure that has a quota."""
    if quota is None:
        return ""
    if quota == 0:
        return "  (quota: 0, nothing more can be written)" if used == 0 else "  (over quota 0)"
    return f"  ({100 * used / quota:.0f}% of quota)"


def _size_line(n: int) -> str:
    return f"{format_bytes_binary(n)} ({n} bytes)"


def render_bucket_info(info: dict[str, Any]) -> str:
    out = ["==== BUCKET INFORMATION ===="]
    out.append(f"Bucket: {info['id']}")
    out.append(f"Created: {format_date(info.get('created'))}")
    out.append("")
    quotas = info.get("quotas") or {}
    size, objects = int(info.get("bytes", 0)), int(info.get("objects", 0))
    out.append(f"Size: {_size_line(size)}{_of_quota(size, quotas.get('maxSize'))}")
    out.append(f"Objects: {objects}{_of_quota(objects, quotas.get('maxObjects'))}")
    out.append(f"Unfinished uploads: {info.get('unfinishedUploads', 0)}")
    out.append(f"Unfinished multipart uploads: {info.get('unfinishedMultipartUploads', 0)}")
    out.append(
        f"Unfinished multipart upload parts: {info.get('unfinishedMultipartUploadParts', 0)}"
    )
    mpu_bytes = int(info.get("unfinishedMultipartUploadBytes", 0))
    out.append(f"Size of unfinished multipart uploads: {_size_line(mpu_bytes)}")
    out.append("")

    website = bool(info.get("websiteAccess"))
    out.append(f"Website access: {str(website).lower()}")
    config = info.get("websiteConfig") or {}
    if website:
        out.append(f"  index document: {config.get('indexDocument') or ''}")
        out.append(f"  error document: {config.get('errorDocument') or '(not defined)'}")
    out.append("")

    aliases = info.get("globalAliases") or []
    if aliases:
        out += [f"Global alias: {a}" for a in aliases]
    else:
        out.append("Global alias: (none)")
    out.append("")

    max_size = quotas.get("maxSize")
    max_objects = quotas.get("maxObjects")
    out.append(f"Max size: {format_bytes(max_size) if max_size is not None else 'none'}")
    out.append(f"Max objects: {max_objects if max_objects is not None else 'none'}")
    out.append("")

    out.append("==== KEYS FOR THIS BUCKET ====")
    rows = [
        [
            format_perms(k.get("permissions") or {}),
            k["accessKeyId"],
            k.get("name", ""),
            ",".join(k.get("bucketLocalAliases") or []),
        ]
        for k in sorted(info.get("keys") or [], key=lambda k: k["accessKeyId"])
    ]
    out.append(format_table(["Permissions", "Access key", "", "Local aliases"], rows))
    return "\n".join(out)


def render_key_list(keys: list[dict[str, Any]]) -> str:
    rows = []
    for k in sorted(keys, key=lambda k: (k.get("created") or "", k["id"])):
        expiration = format_date(k.get("expiration")) or "never"
        if k.get("expired"):
            expiration += " (expired)"
        rows.append([k["id"], format_date(k.get("created"))[:10], k.get("name", ""), expiration])
    return format_table(["ID", "Created", "Name", "Expiration"], rows)


def render_key_info(info: dict[str, Any], *, show_secret: bool) -> str:
    # Field order follows Garage's quick start, which users' scripts grep.
    secret = info.get("secretAccessKey")
    out = ["==== ACCESS KEY INFORMATION ===="]
    out.append(f"Key name: {info.get('name', '')}")
    out.append(f"Key ID: {info['accessKeyId']}")
    out.append(f"Secret key: {secret if show_secret and secret else '(redacted)'}")
    if info.get("created"):
        out.append(f"Created: {format_date(info.get('created'))}")
    expiration = format_date(info.get("expiration")) or "never"
    out.append(f"Validity: {'EXPIRED' if info.get('expired') else 'valid'}")
    out.append(f"Expiration: {expiration}")
    out.append("")
    can_create = bool((info.get("permissions") or {}).get("createBucket"))
    out.append(f"Can create buckets: {str(can_create).lower()}")
    out.append("")
    out.append("==== BUCKETS FOR THIS KEY ====")
    rows = [
        [
            format_perms(b.get("permissions") or {}),
            short_id(b["id"]),
            ",".join(b.get("globalAliases") or []),
            ",".join(b.get("localAliases") or []),
        ]
        for b in sorted(info.get("buckets") or [], key=lambda b: b["id"])
    ]
    out.append(format_table(["Permissions", "ID", "Global aliases", "Local aliases"], rows))
    return "\n".join(out)


def render_object(info: dict[str, Any]) -> str:
    """`garage bucket inspect-object`: one block of lines per version, then its blocks."""
    out: list[str] = []
    for v in info.get("versions") or []:
        rows = [["Bucket ID:", str(info.get("bucketId", ""))], ["Key:", str(info.get("key", ""))],
                ["Version ID:", str(v.get("uuid", ""))], ["Timestamp:", str(v.get("timestamp"))]]
        blocks = v.get("blocks") or []
        if v.get("size") is not None:
            size = int(v["size"])
            rows += [["Size:", f"{format_bytes_binary(size)} ({format_bytes(size)})"],
                     ["Size (exact):", str(size)]]
            if blocks:
                rows.append(["Number of blocks:", str(len(blocks))])
        if v.get("etag") is not None:
            rows.append(["Etag:", str(v["etag"])])
        for label, field in (("Encrypted:", "encrypted"), ("Uploading:", "uploading"),
                             ("Aborted:", "aborted"), ("Delete marker:", "deleteMarker"),
                             ("Inline data:", "inline"), ("Multipart:", "multipart")):
            rows.append([label, str(bool(v.get(field))).lower()])
        out += ["==== OBJECT VERSION ====", format_table(["", ""], rows).split("\n", 1)[1]]
        headers = v.get("headers") or []
        if headers:
            out += ["", format_table(["Header", "Value"], [[str(h[0]), str(h[1])]
                                                           for h in headers])]
        if blocks:
            out += ["", format_table(["Part#", "Offset", "Block hash", "Size"], [
                [str(b.get("partNumber")), str(b.get("offset")), str(b.get("hash")),
                 str(b.get("size"))] for b in blocks])]
        out.append("")
    return "\n".join(out)
