"""S3 XML bodies: response encoders (-> bytes) and request decoders (pure, no I/O)."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from xml.parsers import expat
from xml.sax.saxutils import escape

from pygarage.api.common import errors
from pygarage.api.s3.listing import ListPage, ObjectSummary

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_HEADER = '<?xml version="1.0" encoding="UTF-8"?>'
MAX_DELETE_OBJECTS = 1000
MAX_PART_NUMBER = 10000

# Characters XML 1.0 cannot carry literally. CR is included because parsers would
# normalize it to LF; a character reference preserves it.
_NOT_XML_CHAR = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ALGO_RE = re.compile(r"[a-z0-9]+", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class PartInfo:
    number: int
    etag: str
    size: int
    last_modified_ms: int
    checksum: tuple[str, str] | None = None


@dataclass
class UploadInfo:
    key: str
    upload_id: str
    initiated_ms: int


# ---------------------------------------------------------------- writer helpers

def _ref(m: re.Match[str]) -> str:
    return f"&#x{ord(m.group()):X};"


def xml_text(s: str) -> str:
    """Escape text for element content. Chars illegal in XML 1.0 become &#xN; like AWS
    does; strict parsers may still refuse those, which is why clients use url encoding."""
    return _NOT_XML_CHAR.sub(_ref, escape(s))


def is_xml_safe(s: str) -> bool:
    """True if `s` round-trips through XML 1.0 without url encoding."""
    return _NOT_XML_CHAR.search(s) is None


def url_encode(s: str) -> str:
    """AWS encoding-type=url: everything but unreserved characters and '/'."""
    return quote(s, safe="/~", errors="surrogatepass")


def _e(tag: str, *children: str) -> str:
    return f"<{tag}>{''.join(children)}</{tag}>"


def _t(tag: str, text: str | int | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bool):
        text = "true" if text else "false"
    return f"<{tag}>{xml_text(str(text))}</{tag}>"


def _doc(root: str, *children: str, ns: bool = True) -> bytes:
    attr = f' xmlns="{S3_NS}"' if ns else ""
    return f"{_HEADER}<{root}{attr}>{''.join(children)}</{root}>".encode()


def timestamp(ms: int) -> str:
    """ISO 8601 with milliseconds, e.g. 2006-02-03T16:45:09.000Z."""
    secs, millis = divmod(ms, 1000)
    try:
        d = time.gmtime(secs)  # several times faster than datetime: one per listed object
        y, mo, da, h, mi, se = d.tm_year, d.tm_mon, d.tm_mday, d.tm_hour, d.tm_min, d.tm_sec
    except (OverflowError, OSError, ValueError):
        dt = _EPOCH + timedelta(seconds=secs)
        y, mo, da, h, mi, se = dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
    # %-formatting: about three times faster than the f-string with format specs.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (y, mo, da, h, mi, se, millis)  # noqa: UP031


def _etag(etag: str) -> str:
    return '"' + etag.strip('"') + '"'


def _checksum_tag(algo: str) -> str:
    algo = algo.lower()
    # The algorithm becomes an element name, so it must not smuggle markup.
    if not _ALGO_RE.fullmatch(algo):
        raise ValueError(f"invalid checksum algorithm {algo!r}")
    return "Checksum" + algo.upper()


def _owner(tag: str, owner: tuple[str, str] | None) -> str:
    if owner is None:
        return ""
    return _e(tag, _t("ID", owner[0]), _t("DisplayName", owner[1]))


# ---------------------------------------------------------------- encoders

def error_xml(code: str, message: str, resource: str, region: str,
              request_id: str = "") -> bytes:
    return _doc("Error", _t("Code", code), _t("Message", message), _t("Resource", resource),
                _t("Region", region), _t("RequestId", request_id), ns=False)


def list_buckets_xml(owner_id: str, owner_name: str, buckets: list[tuple[str, int]],
                     continuation_token: str | None = None,
                     prefix: str | None = None, region: str | None = None) -> bytes:
    """ContinuationToken is the token of the next page (absent on the last one); Prefix
    echoes the request's."""
    items = [_e("Bucket", _t("Name", n), _t("CreationDate", timestamp(c)),
                _t("BucketRegion", region)) for n, c in buckets]
    return _doc("ListAllMyBucketsResult", _owner("Owner", (owner_id, owner_name)),
                _e("Buckets", *items), _t("ContinuationToken", continuation_token),
                _t("Prefix", prefix))


def location_xml(region: str) -> bytes:
    return _doc("LocationConstraint", xml_text(region))


def versioning_xml() -> bytes:
    return _doc("VersioningConfiguration")


def _objects(page: ListPage[ObjectSummary], enc: bool, owner: tuple[str, str] | None,
             tag: str = "Contents", versions: bool = False) -> list[str]:
    # One f-string per object: a 1,000-key page is built in a few milliseconds.
    version = _t("VersionId", "null") + _t("IsLatest", True) if versions else ""
    tail = _t("StorageClass", "STANDARD") + _owner("Owner", owner) + f"</{tag}>"
    return [f"<{tag}><Key>{xml_text(url_encode(o.key) if enc else o.key)}</Key>{version}"
            f"<LastModified>{timestamp(o.last_modified_ms)}</LastModified>"
            f"<ETag>{xml_text(_etag(o.etag))}</ETag><Size>{int(o.size)}</Size>{tail}"
            for o in page.contents]


def _prefixes(prefixes: list[str], enc: bool) -> list[str]:
    return [_e("CommonPrefixes", _t("Prefix", _maybe(p, enc))) for p in prefixes]


def _maybe(s: str | None, enc: bool) -> str | None:
    if s is None:
        return None
    return url_encode(s) if enc else s


def list_objects_v1_xml(page: ListPage[ObjectSummary], *, bucket: str, prefix: str,
                        marker: str | None, delimiter: str | None, max_keys: int,
                        encoding_url: bool, owner: tuple[str, str] | None = None) -> bytes:
    enc = encoding_url
    next_marker = page.next_marker if page.truncated else None
    return _doc(
        "ListBucketResult",
        _t("Name", bucket), _t("Prefix", _maybe(prefix, enc)),
        _t("Marker", _maybe(marker or "", enc)),
        _t("NextMarker", _maybe(next_marker, enc)),
        _t("MaxKeys", max_keys), _t("Delimiter", _maybe(delimiter or None, enc)),
        _t("IsTruncated", page.truncated), _t("EncodingType", "url" if enc else None),
        *_objects(page, enc, owner), *_prefixes(page.common_prefixes, enc))


def list_objects_v2_xml(page: ListPage[ObjectSummary], *, bucket: str, prefix: str,
                        delimiter: str | None, max_keys: int, encoding_url: bool,
                        continuation_token: str | None, next_continuation_token: str | None,
                        start_after: str | None, key_count: int, fetch_owner: bool,
                        owner: tuple[str, str] | None = None) -> bytes:
    enc = encoding_url
    return _doc(
        "ListBucketResult",
        _t("Name", bucket), _t("Prefix", _maybe(prefix, enc)),
        _t("ContinuationToken", continuation_token),
        _t("NextContinuationToken", next_continuation_token if page.truncated else None),
        _t("KeyCount", key_count), _t("MaxKeys", max_keys),
        _t("Delimiter", _maybe(delimiter or None, enc)),
        _t("IsTruncated", page.truncated), _t("EncodingType", "url" if enc else None),
        _t("StartAfter", _maybe(start_after or None, enc)),
        *_objects(page, enc, owner if fetch_owner else None),
        *_prefixes(page.common_prefixes, enc))


def list_object_versions_xml(page: ListPage[ObjectSummary], *, bucket: str, prefix: str,
                             key_marker: str | None, delimiter: str | None, max_keys: int,
                             encoding_url: bool, next_key_marker: str | None,
                             version_id_marker: str | None = None,
                             owner: tuple[str, str] | None = None) -> bytes:
    enc = encoding_url
    truncated = page.truncated
    return _doc(
        "ListVersionsResult",
        _t("Name", bucket), _t("Prefix", _maybe(prefix, enc)),
        _t("KeyMarker", _maybe(key_marker or "", enc)),
        _t("VersionIdMarker", version_id_marker or ""),
        _t("NextKeyMarker", _maybe(next_key_marker, enc) if truncated else None),
        # Only current versions exist, all with the "null" version id.
        _t("NextVersionIdMarker", "null" if truncated and next_key_marker else None),
        _t("MaxKeys", max_keys), _t("Delimiter", _maybe(delimiter or None, enc)),
        _t("IsTruncated", truncated), _t("EncodingType", "url" if enc else None),
        *_objects(page, enc, owner, tag="Version", versions=True),
        *_prefixes(page.common_prefixes, enc))


def initiate_multipart_xml(bucket: str, key: str, upload_id: str) -> bytes:
    return _doc("InitiateMultipartUploadResult", _t("Bucket", bucket), _t("Key", key),
                _t("UploadId", upload_id))


def checksum_type_of(value: str) -> str:
    """COMPOSITE values end in -<number of parts>; others are of the whole object."""
    head, sep, n = value.rpartition("-")
    return "COMPOSITE" if sep and head and n.isascii() and n.isdigit() else "FULL_OBJECT"


def _checksum(checksum: tuple[str, str] | None) -> list[str]:
    if not checksum:
        return []
    return [_t(_checksum_tag(checksum[0]), checksum[1]),
            _t("ChecksumType", checksum_type_of(checksum[1]))]


def complete_multipart_xml(location: str, bucket: str, key: str, etag: str,
                           checksum: tuple[str, str] | None = None) -> bytes:
    extra = _checksum(checksum)
    return _doc("CompleteMultipartUploadResult", _t("Location", location),
                _t("Bucket", bucket), _t("Key", key), _t("ETag", _etag(etag)), *extra)


def copy_object_xml(etag: str, last_modified_ms: int) -> bytes:
    return _doc("CopyObjectResult", _t("LastModified", timestamp(last_modified_ms)),
                _t("ETag", _etag(etag)))


def copy_part_xml(etag: str, last_modified_ms: int,
                  checksum: tuple[str, str] | None = None) -> bytes:
    extra = [_t(_checksum_tag(checksum[0]), checksum[1])] if checksum else []
    return _doc("CopyPartResult", _t("LastModified", timestamp(last_modified_ms)),
                _t("ETag", _etag(etag)), *extra)


def list_parts_xml(bucket: str, key: str, upload_id: str, parts: list[PartInfo], *,
                   part_number_marker: int | None, next_marker: int | None, max_parts: int,
                   truncated: bool, owner_id: str,
                   checksum_algorithm: str | None = None,
                   checksum_type: str | None = None) -> bytes:
    owner = (owner_id, owner_id)
    items = []
    for p in parts:
        ck = [_t(_checksum_tag(p.checksum[0]), p.checksum[1])] if p.checksum else []
        items.append(_e("Part", _t("PartNumber", p.number),
                        _t("LastModified", timestamp(p.last_modified_ms)),
                        _t("ETag", _etag(p.etag)), _t("Size", p.size), *ck))
    algo = checksum_algorithm.upper() if checksum_algorithm else None
    return _doc(
        "ListPartsResult",
        _t("Bucket", bucket), _t("Key", key), _t("UploadId", upload_id),
        _owner("Initiator", owner), _owner("Owner", owner), _t("StorageClass", "STANDARD"),
        _t("PartNumberMarker", part_number_marker), _t("NextPartNumberMarker", next_marker),
        _t("MaxParts", max_parts), _t("IsTruncated", truncated),
        _t("ChecksumAlgorithm", algo), _t("ChecksumType", checksum_type), *items)


def list_multipart_uploads_xml(bucket: str, uploads: list[UploadInfo],
                               common_prefixes: list[str], *, prefix: str,
                               delimiter: str | None, key_marker: str | None,
                               upload_id_marker: str | None, next_key_marker: str | None,
                               next_upload_id_marker: str | None, max_uploads: int,
                               truncated: bool, encoding_url: bool,
                               owner: tuple[str, str] | None = None) -> bytes:
    enc = encoding_url
    items = [_e("Upload", _t("Key", _maybe(u.key, enc)), _t("UploadId", u.upload_id),
                _owner("Initiator", owner), _owner("Owner", owner),
                _t("StorageClass", "STANDARD"), _t("Initiated", timestamp(u.initiated_ms)))
             for u in uploads]
    return _doc(
        "ListMultipartUploadsResult",
        _t("Bucket", bucket), _t("KeyMarker", _maybe(key_marker or "", enc)),
        _t("UploadIdMarker", upload_id_marker or ""),
        _t("NextKeyMarker", _maybe(next_key_marker, enc)),
        _t("NextUploadIdMarker", next_upload_id_marker),
        _t("Delimiter", _maybe(delimiter or None, enc)), _t("Prefix", _maybe(prefix, enc)),
        _t("MaxUploads", max_uploads), _t("IsTruncated", truncated),
        _t("EncodingType", "url" if enc else None),
        *items, *_prefixes(common_prefixes, enc))


def delete_result_xml(deleted: list[tuple[str, ...]],
                      errors: list[tuple[str, str, str]]) -> bytes:
    """`deleted` items are (key,) or (key, version_id); `errors` are (key, code, message)."""
    out = []
    for d in deleted:
        version = d[1] if len(d) > 1 and d[1] else None
        out.append(_e("Deleted", _t("Key", d[0]), _t("VersionId", version)))
    for key, code, message in errors:
        out.append(_e("Error", _t("Key", key), _t("Code", code), _t("Message", message)))
    return _doc("DeleteResult", *out)


# ---------------------------------------------------------------- decoders

class _Forbidden(Exception):
    pass


def _refuse(*_args: object) -> None:
    raise _Forbidden()


def _parse(body: bytes, root: str) -> ET.Element:
    """Parse a request body, refusing DTDs so entity expansion attacks cannot start."""
    if not body or not body.strip():
        raise errors.MalformedXML()
    # Expat pre-pass: abort at the first DOCTYPE/ENTITY before anything gets expanded.
    guard = expat.ParserCreate()
    guard.StartDoctypeDeclHandler = _refuse
    guard.EntityDeclHandler = _refuse
    try:
        guard.Parse(body, True)
        elem = ET.fromstring(body)
    except (_Forbidden, expat.ExpatError, ET.ParseError, ValueError, UnicodeError,
            RecursionError):
        raise errors.MalformedXML() from None
    if _local(elem.tag) != root:
        raise errors.MalformedXML()
    return elem


def _local(tag: object) -> str:
    # Clients may or may not put elements in the S3 namespace; both are accepted.
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def _children(elem: ET.Element) -> list[tuple[str, ET.Element]]:
    return [(_local(c.tag), c) for c in elem]


def _opt(elem: ET.Element, name: str) -> ET.Element | None:
    """The child called `name`, None if absent; duplicates are malformed."""
    found = [c for n, c in _children(elem) if n == name]
    if len(found) > 1:
        raise errors.MalformedXML()
    return found[0] if found else None


def _one(elem: ET.Element, name: str) -> ET.Element:
    found = _opt(elem, name)
    if found is None:
        raise errors.MalformedXML()
    return found


def parse_create_bucket(body: bytes) -> str | None:
    """LocationConstraint of a CreateBucket body ('' if empty), None if not given."""
    if not body or not body.strip():
        return None
    root = _parse(body, "CreateBucketConfiguration")
    loc = _opt(root, "LocationConstraint")
    if loc is None:
        return None
    return (loc.text or "").strip()


_CHECKSUM_TAGS = {"ChecksumCRC32": "crc32", "ChecksumCRC32C": "crc32c",
                  "ChecksumCRC64NVME": "crc64nvme", "ChecksumSHA1": "sha1",
                  "ChecksumSHA256": "sha256"}
_INT_RE = re.compile(r"[0-9]{1,9}", re.ASCII)


def parse_complete_multipart(body: bytes) -> list[tuple[int, str, dict[str, str]]]:
    """[(part_number, etag_without_quotes, {"crc32": b64, ...})] in document order."""
    root = _parse(body, "CompleteMultipartUpload")
    parts: list[tuple[int, str, dict[str, str]]] = []
    for name, part in _children(root):
        if name != "Part":
            continue
        num_text = (_one(part, "PartNumber").text or "").strip()
        if not _INT_RE.fullmatch(num_text):
            raise errors.MalformedXML()
        number = int(num_text)
        if not 1 <= number <= MAX_PART_NUMBER:
            raise errors.InvalidArgument(
                f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive")
        etag = (_one(part, "ETag").text or "").strip().strip('"')
        checksums: dict[str, str] = {}
        for cname, child in _children(part):
            algo = _CHECKSUM_TAGS.get(cname)
            if algo is not None:
                if algo in checksums:
                    raise errors.MalformedXML()
                checksums[algo] = (child.text or "").strip()
        parts.append((number, etag, checksums))
    if not parts:
        raise errors.MalformedXML()
    return parts


def parse_delete_objects(body: bytes) -> tuple[bool, list[tuple[str, str | None]]]:
    """(quiet, [(key, version_id_or_None)]) from a DeleteObjects body."""
    root = _parse(body, "Delete")
    quiet = False
    quiet_el = _opt(root, "Quiet")
    if quiet_el is not None:
        q = (quiet_el.text or "").strip().lower()
        if q not in ("true", "false", "1", "0"):
            raise errors.MalformedXML()
        quiet = q in ("true", "1")
    objects: list[tuple[str, str | None]] = []
    for name, obj in _children(root):
        if name != "Object":
            continue
        if len(objects) >= MAX_DELETE_OBJECTS:
            raise errors.MalformedXML()
        # Keys are data: leading/trailing whitespace is significant, so no strip().
        key = _one(obj, "Key").text or ""
        vid_el = _opt(obj, "VersionId")
        vid = (vid_el.text or "").strip() if vid_el is not None else None
        objects.append((key, vid or None))
    if not objects:
        raise errors.MalformedXML()
    return quiet, objects
