"""GetObjectAttributes (GET ?attributes): ETag, Checksum, ObjectParts, ObjectSize and
StorageClass of the current version, as chosen by the x-amz-object-attributes header."""

from __future__ import annotations

from aiohttp import web

from ...model.s3.object_table import ObjectVersion
from ..common import errors
from ..common.wire import is_ascii_uint, parse_uint
from . import encryption
from .conditions import http_date
from .context import ReqCtx
from .get import load_current
from .xml import _checksum_tag, _doc, _e, _t

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def parse_attributes(values: list[str]) -> set[str]:
    """x-amz-object-attributes (one header, comma-separated, or repeated) -> names.
    Matched exactly as AWS does: names are case-sensitive."""
    names = {n.strip() for v in values for n in v.split(",") if n.strip()}
    if not names:
        raise errors.InvalidArgument("The x-amz-object-attributes header specifying the "
                                     "attributes to be retrieved is either missing or empty")
    bad = names - set(ATTRIBUTES)
    if bad:
        raise errors.InvalidArgument("Invalid attribute name specified.")
    return names


def checksum_xml(checksum: tuple[str, str]) -> str:
    algo, value = checksum
    composite = "-" in value and is_ascii_uint(value.rpartition("-")[2])
    return _e("Checksum", _t(_checksum_tag(algo), value),
              _t("ChecksumType", "COMPOSITE" if composite else "FULL_OBJECT"))


def parts_xml(sizes: list[tuple[int, int]], marker: int, max_parts: int,
              checksums: tuple[str, list[str]] | None = None) -> str:
    """sizes: (part number, size) of every part, ascending; checksums: (algorithm, each
    part's checksum in part order), if the upload had an algorithm."""
    after = [(n, s) for n, s in sizes if n > marker]
    page = after[:max_parts]
    truncated = len(after) > max_parts

    def part_checksum(n: int) -> str:
        if checksums is None or not 0 < n <= len(checksums[1]):
            return ""
        return _t(_checksum_tag(checksums[0]), checksums[1][n - 1] or None)
    items = [_e("Part", part_checksum(n), _t("PartNumber", n), _t("Size", s))
             for n, s in page]
    return _e("ObjectParts", _t("PartsCount", len(sizes)),
              _t("PartNumberMarker", marker), _t("NextPartNumberMarker",
                                                   page[-1][0] if page else marker),
              _t("MaxParts", max_parts), _t("IsTruncated", truncated), *items)


def attributes_xml(v: ObjectVersion, names: set[str],
                   part_sizes: list[tuple[int, int]] | None, marker: int,
                   max_parts: int) -> bytes:
    assert v.meta is not None
    out: list[str] = []
    if "ETag" in names:
        out.append(_t("ETag", v.meta.etag))
    if "Checksum" in names and v.meta.checksum:
        out.append(checksum_xml(v.meta.checksum))
    if "ObjectParts" in names and part_sizes is not None:
        checksums = (v.meta.checksum[0], v.meta.part_checksums) \
            if v.meta.checksum and v.meta.part_checksums else None
        out.append(parts_xml(part_sizes, marker, max_parts, checksums))
    if "StorageClass" in names:
        out.append(_t("StorageClass", "STANDARD"))
    if "ObjectSize" in names:
        out.append(_t("ObjectSize", v.meta.size))
    return _doc("GetObjectAttributesResponse", *out)


async def _part_sizes(ctx: ReqCtx, v: ObjectVersion) -> list[tuple[int, int]] | None:
    """Sizes of a multipart object's parts (renumbered 1..N at completion); None for an
    object uploaded in one piece, which has no parts to list (as on AWS)."""
    assert v.meta is not None
    if not v.meta.parts or v.inline is not None:
        return None
    ver = await ctx.garage.version_table.get(v.uuid)
    if ver is None or ver.deleted:
        raise errors.NoSuchKey("the object's data is gone")
    sizes: dict[int, int] = {}
    for (p, _off), b in ver.blocks.items():
        sizes[p] = sizes.get(p, 0) + b.size
    return sorted(sizes.items())


async def handle_get_object_attributes(ctx: ReqCtx) -> web.Response:
    names = parse_attributes(ctx.headers.getall("x-amz-object-attributes", []))
    max_parts = min(parse_uint(ctx.headers.get("x-amz-max-parts", str(MAX_PARTS)),
                               "x-amz-max-parts"), MAX_PARTS)
    marker = parse_uint(ctx.headers.get("x-amz-part-number-marker", "0"),
                        "x-amz-part-number-marker", max_value=10000)
    _, v = await load_current(ctx)
    assert v.meta is not None
    sse = encryption.for_read(ctx.headers, v)
    sizes = await _part_sizes(ctx, v) if "ObjectParts" in names else None
    headers = {"Last-Modified": http_date(v.timestamp), "x-amz-version-id": v.uuid.hex()}
    headers.update(encryption.response_headers(sse))
    return web.Response(body=attributes_xml(v, names, sizes, marker, max_parts),
                        content_type="application/xml", headers=headers)
