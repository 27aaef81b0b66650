"""Tests for S3 XML encoders and decoders."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pygarage.api.common import errors
from pygarage.api.s3 import xml as s3xml
from pygarage.api.s3.listing import ListPage, ObjectSummary

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
HEADER = b'<?xml version="1.0" encoding="UTF-8"?>'
T0 = 1_138_985_109_000  # 2006-02-03T16:45:09Z


def parse(body: bytes) -> ET.Element:
    assert body.startswith(HEADER)
    return ET.fromstring(body)


def text(root: ET.Element, path: str) -> str | None:
    el = root.find(_ns(path))
    return None if el is None else (el.text or "")


def _ns(path: str) -> str:
    return "/".join(NS + p for p in path.split("/"))


def botocore_parse(operation: str, body: bytes) -> dict[str, Any]:
    """Parse with the real boto3 response parser, to check client compatibility."""
    botocore = pytest.importorskip("botocore.session")
    from botocore.parsers import RestXMLParser

    model = botocore.get_session().get_service_model("s3").operation_model(operation)
    return RestXMLParser().parse({"body": body, "headers": {}, "status_code": 200},
                                 model.output_shape)


# ------------------------------------------------------------------ helpers


def test_timestamp() -> None:
    assert s3xml.timestamp(T0) == "2006-02-03T16:45:09.000Z"
    assert s3xml.timestamp(T0 + 7) == "2006-02-03T16:45:09.007Z"
    assert s3xml.timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert s3xml.timestamp(-1) == "1969-12-31T23:59:59.999Z"


def test_escaping() -> None:
    assert s3xml.xml_text("a<b>&c\"'") == "a&lt;b&gt;&amp;c\"'"
    assert s3xml.xml_text("x\x01y") == "x&#x1;y"
    assert s3xml.xml_text("\r") == "&#xD;"
    assert s3xml.xml_text("\ufffe\ud800") == "&#xFFFE;&#xD800;"
    assert s3xml.xml_text("tab\tnl\né\U0001f600") == "tab\tnl\né\U0001f600"
    assert s3xml.is_xml_safe("normal/key é")
    assert not s3xml.is_xml_safe("bad\x01")


def test_url_encode() -> None:
    assert s3xml.url_encode("a b/c~d-e_f.g") == "a%20b/c~d-e_f.g"
    assert s3xml.url_encode("é+&=?#%") == "%C3%A9%2B%26%3D%3F%23%25"
    assert s3xml.url_encode("\x01") == "%01"
    s3xml.url_encode("\ud800")  # must not crash


# ------------------------------------------------------------------ simple encoders


def test_error_xml() -> None:
    body = s3xml.error_xml("NoSuchKey", "The <key> does not exist", "/b/k&", "garage", "rid")
    assert b"xmlns" not in body
    root = parse(body)
    assert root.tag == "Error"
    assert [c.tag for c in root] == ["Code", "Message", "Resource", "Region", "RequestId"]
    assert root.findtext("Message") == "The <key> does not exist"
    assert root.findtext("Resource") == "/b/k&"


def test_list_buckets() -> None:
    body = s3xml.list_buckets_xml("GKid", "name", [("a", T0), ("b<", 0)])
    root = parse(body)
    assert root.tag == NS + "ListAllMyBucketsResult"
    assert text(root, "Owner/ID") == "GKid"
    names = [e.text for e in root.iter(NS + "Name")]
    assert names == ["a", "b<"]
    parsed = botocore_parse("ListBuckets", body)
    assert parsed["Buckets"][0]["Name"] == "a"
    assert parsed["Buckets"][0]["CreationDate"].year == 2006
    assert parsed["Owner"] == {"ID": "GKid", "DisplayName": "name"}


def test_location_and_versioning() -> None:
    root = parse(s3xml.location_xml("garage"))
    assert root.tag == NS + "LocationConstraint" and root.text == "garage"
    root = parse(s3xml.versioning_xml())
    assert root.tag == NS + "VersioningConfiguration" and len(root) == 0


def test_multipart_simple_results() -> None:
    root = parse(s3xml.initiate_multipart_xml("b", "k&", "up1"))
    assert root.tag == NS + "InitiateMultipartUploadResult"
    assert (text(root, "Bucket"), text(root, "Key"), text(root, "UploadId")) == (
        "b", "k&", "up1")
    body = s3xml.complete_multipart_xml("http://h/b/k", "b", "k", "abc-2", ("crc32", "AAAA"))
    root = parse(body)
    assert text(root, "ETag") == '"abc-2"'
    assert text(root, "ChecksumCRC32") == "AAAA"
    parsed = botocore_parse("CompleteMultipartUpload", body)
    assert parsed["ETag"] == '"abc-2"' and parsed["ChecksumCRC32"] == "AAAA"
    root = parse(s3xml.complete_multipart_xml("l", "b", "k", "e", None))
    assert root.find(NS + "ChecksumCRC32") is None
    with pytest.raises(ValueError):
        s3xml.complete_multipart_xml("l", "b", "k", "e", ("x><y", "v"))


def test_copy_results() -> None:
    root = parse(s3xml.copy_object_xml("abc", T0))
    assert root.tag == NS + "CopyObjectResult"
    assert text(root, "ETag") == '"abc"'
    assert text(root, "LastModified") == "2006-02-03T16:45:09.000Z"
    root = parse(s3xml.copy_part_xml("abc", T0))
    assert root.tag == NS + "CopyPartResult"


def test_delete_result() -> None:
    body = s3xml.delete_result_xml([("a",), ("b", "v1"), ("c", "")],
                                   [("d", "AccessDenied", "Access Denied")])
    root = parse(body)
    deleted = root.findall(NS + "Deleted")
    assert [d.findtext(NS + "Key") for d in deleted] == ["a", "b", "c"]
    assert [d.findtext(NS + "VersionId") for d in deleted] == [None, "v1", None]
    assert text(root, "Error/Code") == "AccessDenied"
    parsed = botocore_parse("DeleteObjects", body)
    assert parsed["Errors"] == [{"Key": "d", "Code": "AccessDenied", "Message": "Access Denied"}]


# ------------------------------------------------------------------ listings


def objs(*keys: str) -> list[ObjectSummary]:
    return [ObjectSummary(k, 10 * i, f"etag{i}", T0 + i) for i, k in enumerate(keys)]


def test_list_v1() -> None:
    page = ListPage(objs("a&b", "c"), ["d/"], True, "d/")
    body = s3xml.list_objects_v1_xml(page, bucket="bk", prefix="", marker=None, delimiter="/",
                                     max_keys=3, encoding_url=False, owner=("id", "nm"))
    root = parse(body)
    assert root.tag == NS + "ListBucketResult"
    assert text(root, "NextMarker") == "d/"
    assert text(root, "Marker") == ""
    assert text(root, "IsTruncated") == "true"
    assert root.find(NS + "EncodingType") is None
    c = root.findall(NS + "Contents")
    assert [x.findtext(NS + "Key") for x in c] == ["a&b", "c"]
    assert c[1].findtext(NS + "ETag") == '"etag1"'
    assert c[1].findtext(NS + "Size") == "10"
    assert c[1].findtext(NS + "StorageClass") == "STANDARD"
    assert c[1].findtext(NS + "LastModified") == "2006-02-03T16:45:09.001Z"
    parsed = botocore_parse("ListObjects", body)
    assert parsed["IsTruncated"] is True and parsed["NextMarker"] == "d/"
    assert parsed["Contents"][0]["Owner"] == {"ID": "id", "DisplayName": "nm"}
    assert parsed["CommonPrefixes"] == [{"Prefix": "d/"}]
    assert parsed["MaxKeys"] == 3 and parsed["Delimiter"] == "/"


def test_list_v1_not_truncated_has_no_next_marker() -> None:
    page = ListPage(objs("a"), [], False, None)
    root = parse(s3xml.list_objects_v1_xml(page, bucket="b", prefix="p", marker="m",
                                           delimiter=None, max_keys=1000, encoding_url=False))
    assert root.find(NS + "NextMarker") is None
    assert root.find(NS + "Delimiter") is None
    assert root.find(NS + "Contents/" + NS + "Owner") is None
    assert text(root, "Marker") == "m" and text(root, "Prefix") == "p"


def test_list_v1_url_encoding() -> None:
    page = ListPage(objs("a b\x01", "é"), ["x y/"], True, "x y/")
    body = s3xml.list_objects_v1_xml(page, bucket="b", prefix="p q", marker="m n",
                                     delimiter="/", max_keys=5, encoding_url=True)
    root = parse(body)
    assert text(root, "EncodingType") == "url"
    assert [e.text for e in root.iter(NS + "Key")] == ["a%20b%01", "%C3%A9"]
    assert text(root, "CommonPrefixes/Prefix") == "x%20y/"
    assert (text(root, "Prefix"), text(root, "Marker"), text(root, "NextMarker")) == (
        "p%20q", "m%20n", "x%20y/")


def test_list_control_chars_without_url_encoding_does_not_crash() -> None:
    page = ListPage(objs("bad\x01key", "cr\rkey"), [], False, None)
    body = s3xml.list_objects_v1_xml(page, bucket="b", prefix="", marker=None,
                                     delimiter=None, max_keys=5, encoding_url=False)
    assert b"bad&#x1;key" in body and b"cr&#xD;key" in body


def test_list_v2() -> None:
    page = ListPage(objs("k1"), ["p/"], True, "p/")
    body = s3xml.list_objects_v2_xml(page, bucket="b", prefix="", delimiter="/", max_keys=2,
                                     encoding_url=False, continuation_token="tok0",
                                     next_continuation_token="tok1", start_after="s",
                                     key_count=2, fetch_owner=False, owner=("i", "n"))
    root = parse(body)
    assert text(root, "KeyCount") == "2"
    assert text(root, "ContinuationToken") == "tok0"
    assert text(root, "NextContinuationToken") == "tok1"
    assert text(root, "StartAfter") == "s"
    assert root.find(NS + "Contents/" + NS + "Owner") is None
    parsed = botocore_parse("ListObjectsV2", body)
    assert parsed["KeyCount"] == 2 and parsed["NextContinuationToken"] == "tok1"
    assert parsed["Contents"][0]["Key"] == "k1" and parsed["Contents"][0]["Size"] == 0

    page = ListPage(objs("k1"), [], False, None)
    body = s3xml.list_objects_v2_xml(page, bucket="b", prefix="", delimiter=None,
                                     max_keys=2, encoding_url=True, continuation_token=None,
                                     next_continuation_token="ignored", start_after=None,
                                     key_count=1, fetch_owner=True, owner=("i", "n"))
    root = parse(body)
    for tag in ["ContinuationToken", "NextContinuationToken", "StartAfter", "Delimiter"]:
        assert root.find(NS + tag) is None, tag
    assert text(root, "Contents/Owner/ID") == "i"
    assert text(root, "EncodingType") == "url"


def test_list_versions() -> None:
    page = ListPage(objs("a", "b"), ["c/"], True, "c/")
    body = s3xml.list_object_versions_xml(page, bucket="b", prefix="", key_marker=None,
                                          delimiter="/", max_keys=3, encoding_url=False,
                                          next_key_marker="c/")
    root = parse(body)
    assert root.tag == NS + "ListVersionsResult"
    v = root.findall(NS + "Version")
    assert [x.findtext(NS + "VersionId") for x in v] == ["null", "null"]
    assert [x.findtext(NS + "IsLatest") for x in v] == ["true", "true"]
    assert text(root, "NextKeyMarker") == "c/"
    assert text(root, "NextVersionIdMarker") == "null"
    parsed = botocore_parse("ListObjectVersions", body)
    assert parsed["Versions"][0]["IsLatest"] is True
    assert parsed["NextVersionIdMarker"] == "null"

    page = ListPage(objs("a"), [], False, None)
    root = parse(s3xml.list_object_versions_xml(
        page, bucket="b", prefix="", key_marker="k", delimiter=None, max_keys=3,
        encoding_url=True, next_key_marker=None))
    assert root.find(NS + "NextKeyMarker") is None
    assert root.find(NS + "NextVersionIdMarker") is None
    assert text(root, "KeyMarker") == "k"


def test_list_parts() -> None:
    parts = [s3xml.PartInfo(1, "e1", 5 << 20, T0, ("crc32", "AAAA")),
             s3xml.PartInfo(2, "e2", 10, T0, None)]
    body = s3xml.list_parts_xml("b", "k", "up", parts, part_number_marker=None, next_marker=2,
                                max_parts=2, truncated=True, owner_id="GK",
                                checksum_algorithm="crc32")
    root = parse(body)
    assert root.tag == NS + "ListPartsResult"
    assert root.find(NS + "PartNumberMarker") is None
    assert text(root, "NextPartNumberMarker") == "2"
    assert text(root, "ChecksumAlgorithm") == "CRC32"
    assert text(root, "Initiator/ID") == "GK"
    p = root.findall(NS + "Part")
    assert p[0].findtext(NS + "ChecksumCRC32") == "AAAA"
    assert p[1].find(NS + "ChecksumCRC32") is None
    parsed = botocore_parse("ListParts", body)
    assert [x["PartNumber"] for x in parsed["Parts"]] == [1, 2]
    assert parsed["Parts"][0]["ETag"] == '"e1"' and parsed["IsTruncated"] is True
    assert parsed["Owner"]["ID"] == "GK"


def test_list_multipart_uploads() -> None:
    ups = [s3xml.UploadInfo("a b", "u1", T0), s3xml.UploadInfo("c", "u2", T0)]
    body = s3xml.list_multipart_uploads_xml(
        "b", ups, ["d/"], prefix="", delimiter="/", key_marker=None, upload_id_marker=None,
        next_key_marker="c", next_upload_id_marker="u2", max_uploads=3, truncated=True,
        encoding_url=True, owner=("GK", "GK"))
    root = parse(body)
    assert root.tag == NS + "ListMultipartUploadsResult"
    u = root.findall(NS + "Upload")
    assert [x.findtext(NS + "Key") for x in u] == ["a%20b", "c"]
    assert u[0].findtext(NS + "Initiated") == "2006-02-03T16:45:09.000Z"
    assert text(root, "NextUploadIdMarker") == "u2"
    parsed = botocore_parse("ListMultipartUploads", body)
    assert [x["UploadId"] for x in parsed["Uploads"]] == ["u1", "u2"]
    assert parsed["CommonPrefixes"] == [{"Prefix": "d/"}]
    assert parsed["IsTruncated"] is True and parsed["MaxUploads"] == 3


@given(st.text(max_size=30))
def test_any_key_produces_wellformed_or_escaped_xml(key: str) -> None:
    page = ListPage(objs(key), [key], False, None)
    for enc in (False, True):
        body = s3xml.list_objects_v1_xml(page, bucket="b", prefix=key, marker=key,
                                         delimiter=key, max_keys=1, encoding_url=enc)
        if enc or s3xml.is_xml_safe(key):
            root = parse(body)
            found = root.findtext(NS + "Contents/" + NS + "Key")
            if enc:
                from urllib.parse import unquote
                if not any(0xD800 <= ord(c) <= 0xDFFF for c in key):
                    assert unquote(found or "") == key
            else:
                assert found == key


# ------------------------------------------------------------------ decoders

S3NS_ATTR = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


@pytest.mark.parametrize("ns", ["", S3NS_ATTR])
def test_parse_create_bucket(ns: str) -> None:
    body = (f"<CreateBucketConfiguration{ns}><LocationConstraint> garage "
            "</LocationConstraint></CreateBucketConfiguration>").encode()
    assert s3xml.parse_create_bucket(body) == "garage"
    assert s3xml.parse_create_bucket(f"<CreateBucketConfiguration{ns}/>".encode()) is None
    assert s3xml.parse_create_bucket(
        f"<CreateBucketConfiguration{ns}><LocationConstraint/></CreateBucketConfiguration>"
        .encode()) == ""
    assert s3xml.parse_create_bucket(b"") is None
    assert s3xml.parse_create_bucket(b"  \n") is None


@pytest.mark.parametrize("body", [
    b"garbage", b"<Other/>", b"<CreateBucketConfiguration>",
    b"<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint>"
    b"<LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>",
])
def test_parse_create_bucket_malformed(body: bytes) -> None:
    with pytest.raises(errors.MalformedXML):
        s3xml.parse_create_bucket(body)


COMPLETE = b"""<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload%s>
  <Part><PartNumber>1</PartNumber><ETag>"etag1"</ETag>
        <ChecksumCRC32>AAAA</ChecksumCRC32></Part>
  <Part>
    <ETag>&quot;etag2&quot;</ETag>
    <PartNumber> 2 </PartNumber>
    <ChecksumSHA256>BBBB</ChecksumSHA256><ChecksumCRC64NVME>CC</ChecksumCRC64NVME>
  </Part>
  <Part><PartNumber>10000</PartNumber><ETag>etag3</ETag></Part>
</CompleteMultipartUpload>"""


@pytest.mark.parametrize("ns", [b"", S3NS_ATTR.encode()])
def test_parse_complete_multipart(ns: bytes) -> None:
    assert s3xml.parse_complete_multipart(COMPLETE % ns) == [
        (1, "etag1", {"crc32": "AAAA"}),
        (2, "etag2", {"sha256": "BBBB", "crc64nvme": "CC"}),
        (10000, "etag3", {}),
    ]


@pytest.mark.parametrize("body", [
    b"", b"   ", b"<CompleteMultipartUpload/>", b"<CompleteMultipartUpload></Complete>",
    b"<Wrong><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Wrong>",
    b"<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
    b"</CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part>"
    b"</CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>e</ETag></Part>"
    b"</CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber>"
    b"<ETag>e</ETag></Part></CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>99999999999999</PartNumber><ETag>e</ETag>"
    b"</Part></CompleteMultipartUpload>",
])
def test_parse_complete_multipart_malformed(body: bytes) -> None:
    with pytest.raises(errors.MalformedXML):
        s3xml.parse_complete_multipart(body)


@pytest.mark.parametrize("number", ["0", "10001"])
def test_parse_complete_multipart_part_range(number: str) -> None:
    body = (f"<CompleteMultipartUpload><Part><PartNumber>{number}</PartNumber><ETag>e</ETag>"
            "</Part></CompleteMultipartUpload>").encode()
    with pytest.raises(errors.InvalidArgument):
        s3xml.parse_complete_multipart(body)


@pytest.mark.parametrize("ns", ["", S3NS_ATTR])
def test_parse_delete_objects(ns: str) -> None:
    body = (f"<Delete{ns}><Quiet>true</Quiet>"
            "<Object><Key> spaced key </Key></Object>"
            "<Object><Key>a&amp;b</Key><VersionId>v1</VersionId></Object>"
            "<Object><Key>../x</Key><VersionId></VersionId></Object>"
            "</Delete>").encode()
    assert s3xml.parse_delete_objects(body) == (
        True, [(" spaced key ", None), ("a&b", "v1"), ("../x", None)])
    body = f"<Delete{ns}><Object><Key>k</Key></Object></Delete>".encode()
    assert s3xml.parse_delete_objects(body) == (False, [("k", None)])
    body = f"<Delete{ns}><Quiet>False</Quiet><Object><Key>k</Key></Object></Delete>".encode()
    assert s3xml.parse_delete_objects(body)[0] is False


def test_parse_delete_objects_limit() -> None:
    many = "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(1000))
    assert len(s3xml.parse_delete_objects(f"<Delete>{many}</Delete>".encode())[1]) == 1000
    many += "<Object><Key>extra</Key></Object>"
    with pytest.raises(errors.MalformedXML):
        s3xml.parse_delete_objects(f"<Delete>{many}</Delete>".encode())


@pytest.mark.parametrize("body", [
    b"", b"<Delete/>", b"<Delete><Quiet>true</Quiet></Delete>",
    b"<Delete><Object><VersionId>v</VersionId></Object></Delete>",
    b"<Delete><Quiet>maybe</Quiet><Object><Key>k</Key></Object></Delete>",
    b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
    b"<NotDelete><Object><Key>k</Key></Object></NotDelete>",
    b"<Delete><Object><Key>k</Key></Object>",
    b"\xff\xfe<garbage",
])
def test_parse_delete_objects_malformed(body: bytes) -> None:
    with pytest.raises(errors.MalformedXML):
        s3xml.parse_delete_objects(body)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Delete><Object><Key>&lol4;</Key></Object></Delete>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Delete><Object><Key>&xxe;</Key></Object></Delete>"""

DOCTYPE_ONLY = b"""<!DOCTYPE Delete><Delete><Object><Key>k</Key></Object></Delete>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL, DOCTYPE_ONLY])
def test_dtd_rejected(body: bytes) -> None:
    with pytest.raises(errors.MalformedXML):
        s3xml.parse_delete_objects(body)
    with pytest.raises(errors.MalformedXML):
        s3xml.parse_create_bucket(body.replace(b"Delete", b"CreateBucketConfiguration"))


def test_undefined_entity_rejected() -> None:
    with pytest.raises(errors.MalformedXML):
        s3xml.parse_delete_objects(b"<Delete><Object><Key>&foo;</Key></Object></Delete>")


def test_utf16_body() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><Delete><Object><Key>é</Key></Object>' \
           '</Delete>'
    assert s3xml.parse_delete_objects(body.encode("utf-16")) == (False, [("é", None)])


def test_roundtrip_complete_multipart_from_botocore_shape() -> None:
    # The shape boto3 serializes: namespace on the root, quoted ETags.
    body = (f'<CompleteMultipartUpload{S3NS_ATTR}><Part><ETag>"x"</ETag>'
            "<PartNumber>1</PartNumber></Part></CompleteMultipartUpload>").encode()
    assert s3xml.parse_complete_multipart(body) == [(1, "x", {})]


ALLOWED = (errors.MalformedXML, errors.InvalidArgument, errors.InvalidRequest)


@given(st.binary(max_size=200))
def test_decoders_fuzz_bytes(body: bytes) -> None:
    for fn in (s3xml.parse_create_bucket, s3xml.parse_complete_multipart,
               s3xml.parse_delete_objects):
        try:
            fn(body)
        except ALLOWED:
            pass


xml_like = st.recursive(
    st.sampled_from(["", "1", "x", "&amp;", "true", '"e"', "  ", "10001"]),
    lambda inner: st.tuples(
        st.sampled_from(["Delete", "Object", "Key", "VersionId", "Quiet", "Part",
                         "PartNumber", "ETag", "ChecksumCRC32", "CompleteMultipartUpload",
                         "CreateBucketConfiguration", "LocationConstraint"]),
        st.lists(inner, max_size=3)).map(lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0]}>"),
    max_leaves=12)


@given(xml_like)
def test_decoders_fuzz_structured(doc: str) -> None:
    for fn in (s3xml.parse_create_bucket, s3xml.parse_complete_multipart,
               s3xml.parse_delete_objects):
        try:
            fn(doc.encode())
        except ALLOWED:
            pass


def test_list_buckets_page_elements() -> None:
    body = s3xml.list_buckets_xml("GK1", "me", [("a", 0)], continuation_token="tok",
                                  prefix="a", region="garage")
    root = parse(body)
    assert text(root, "ContinuationToken") == "tok" and text(root, "Prefix") == "a"
    assert text(root, "Buckets/Bucket/BucketRegion") == "garage"
    got = botocore_parse("ListBuckets", body)
    assert got["ContinuationToken"] == "tok" and got["Prefix"] == "a"
    assert got["Buckets"][0]["BucketRegion"] == "garage"
    last = parse(s3xml.list_buckets_xml("GK1", "me", []))
    assert text(last, "ContinuationToken") is None and text(last, "Prefix") is None


def test_checksum_type_of() -> None:
    assert s3xml.checksum_type_of("AAAAAA==-3") == "COMPOSITE"
    assert s3xml.checksum_type_of("AAAAAA==") == "FULL_OBJECT"
    assert s3xml.checksum_type_of("-3") == "FULL_OBJECT"
    assert s3xml.checksum_type_of("AAAAAA==-\u0663") == "FULL_OBJECT"


def test_multipart_checksum_elements() -> None:
    body = s3xml.complete_multipart_xml("/b/k", "b", "k", "e-2", ("crc32c", "AAAAAA==-2"))
    got = botocore_parse("CompleteMultipartUpload", body)
    assert got["ChecksumCRC32C"] == "AAAAAA==-2" and got["ChecksumType"] == "COMPOSITE"
    body = s3xml.list_parts_xml("b", "k", "u", [s3xml.PartInfo(1, "e", 3, 0,
                                                               ("crc64nvme", "AAAAAAAAAAA="))],
                                part_number_marker=None, next_marker=None, max_parts=1000,
                                truncated=False, owner_id="GK1",
                                checksum_algorithm="crc64nvme", checksum_type="FULL_OBJECT")
    got = botocore_parse("ListParts", body)
    assert got["ChecksumAlgorithm"] == "CRC64NVME" and got["ChecksumType"] == "FULL_OBJECT"
    assert got["Parts"][0]["ChecksumCRC64NVME"] == "AAAAAAAAAAA="
    got = botocore_parse("UploadPartCopy",
                         s3xml.copy_part_xml("e", 0, ("sha1", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")))
    assert got["CopyPartResult"]["ChecksumSHA1"] == "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
