"""PostObject (browser form uploads) against a real server: forms signed by boto3's
generate_presigned_post, and hand-built multipart bodies for everything a browser or an
attacker may send."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from s3helpers import object_exists, signing_key

from pygarage.testing.node import GarageNode

BOUNDARY = "----pygarageFormBoundary7MA4YWxkTrZu0gW"


def form(fields: list[tuple[str, str | bytes]], file: bytes | None = b"data",
         filename: str | None = "f.txt", after: list[tuple[str, str]] | None = None,
         boundary: str = BOUNDARY) -> bytes:
    out = bytearray()
    for name, value in fields:
        v = value.encode() if isinstance(value, str) else value
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                .encode() + v + b"\r\n")
    if file is not None:
        fn = f'; filename="{filename}"' if filename is not None else ""
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"{fn}\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + file + b"\r\n"
    for name, value in after or []:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


class Resp:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def text(self, name: str) -> str | None:
        for el in ET.fromstring(self.body).iter():
            if el.tag.rsplit("}", 1)[-1] == name:
                return el.text or ""
        return None

    @property
    def code(self) -> str | None:
        return self.text("Code") if self.body else None


def post(node: GarageNode, bucket: str, body: bytes,
         content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
         path: str | None = None) -> Resp:
    conn = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=30)
    try:
        conn.request("POST", path or f"/{bucket}", body=body,
                     headers={"Content-Type": content_type})
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def presigned(s3: Any, bucket: str, key: str = "up/${filename}",
              fields: dict[str, str] | None = None, conditions: list[Any] | None = None,
              expires: int = 600) -> list[tuple[str, str | bytes]]:
    conds = [["starts-with", "$key", "up/"]] if conditions is None else conditions
    p = s3.generate_presigned_post(bucket, key, Fields=fields, Conditions=conds,
                                   ExpiresIn=expires)
    return list(p["fields"].items())


def sign_policy(creds: tuple[str, str], doc: dict[str, Any]) -> list[tuple[str, str | bytes]]:
    """A form signed by hand, for policies boto3 would not write (the auth fields are
    allowed by conditions added to a list of conditions, if the document has one)."""
    date8 = "20300101"
    cred = f"{creds[0]}/{date8}/garage/s3/aws4_request"
    if isinstance(doc.get("conditions"), list):
        doc = {**doc, "conditions": doc["conditions"] + [
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"x-amz-credential": cred},
            {"x-amz-date": f"{date8}T000000Z"}, ["starts-with", "$key", ""]]}
    policy = base64.b64encode(json.dumps(doc).encode()).decode()
    sig = hmac.new(signing_key(creds[1], date8), policy.encode(), hashlib.sha256).hexdigest()
    return [("x-amz-algorithm", "AWS4-HMAC-SHA256"), ("x-amz-credential", cred),
            ("x-amz-date", f"{date8}T000000Z"), ("policy", policy), ("x-amz-signature", sig)]


def test_boto3_presigned_post_with_requests(node: GarageNode, s3: Any, bucket: str) -> None:
    import requests
    p = s3.generate_presigned_post(bucket, "hello.txt", ExpiresIn=600)
    r = requests.post(p["url"], data=p["fields"], files={"file": ("x.txt", b"hi there")},
                      timeout=30)
    assert r.status_code == 204, r.text
    assert r.headers["ETag"] == f'"{hashlib.md5(b"hi there").hexdigest()}"'
    assert r.headers["Location"].endswith(f"/{bucket}/hello.txt")
    assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hi there"


def test_filename_metadata_and_statuses(node: GarageNode, s3: Any, bucket: str) -> None:
    conds: list[Any] = [["starts-with", "$key", "up/"], {"success_action_status": "201"},
                        ["starts-with", "$Content-Type", "text/"],
                        ["eq", "$x-amz-meta-color", "blue"]]
    fields = presigned(s3, bucket, conditions=conds)
    body = form(fields + [("success_action_status", "201"), ("Content-Type", "text/plain"),
                          ("x-amz-meta-color", "blue")], file=b"form data",
                filename="report 1.txt")
    r = post(node, bucket, body)
    assert r.status == 201, r.body
    assert r.text("Key") == "up/report 1.txt" and r.text("Bucket") == bucket
    assert r.text("ETag") == f'"{hashlib.md5(b"form data").hexdigest()}"'
    assert r.text("Location").endswith(f"/{bucket}/up/report%201.txt")
    got = s3.get_object(Bucket=bucket, Key="up/report 1.txt")
    assert got["Body"].read() == b"form data"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"color": "blue"}
    for status, expect in (("200", 200), ("999", 204)):
        conds = [["starts-with", "$key", "up/"], {"success_action_status": status}]
        fields = presigned(s3, bucket, conditions=conds)
        r = post(node, bucket, form(fields + [("success_action_status", status)]))
        assert r.status == expect and r.body == b""


def test_redirect(node: GarageNode, s3: Any, bucket: str) -> None:
    url = "https://example.com/done?x=1"
    fields = presigned(s3, bucket, conditions=[["starts-with", "$key", "up/"],
                                               {"success_action_redirect": url}])
    r = post(node, bucket, form(fields + [("success_action_redirect", url)],
                                filename="a&b.txt"))
    assert r.status == 303
    loc = urlsplit(r.headers["location"])
    assert (loc.scheme, loc.netloc, loc.path) == ("https", "example.com", "/done")
    q = parse_qs(loc.query)
    assert q["x"] == ["1"] and q["bucket"] == [bucket] and q["key"] == ["up/a&b.txt"]
    assert q["etag"] == [f'"{hashlib.md5(b"data").hexdigest()}"']
    # Not an http(s) URL: ignored, the status answer is used.
    bad = "javascript:alert(1)"
    fields = presigned(s3, bucket, conditions=[["starts-with", "$key", "up/"],
                                               {"success_action_redirect": bad}])
    r = post(node, bucket, form(fields + [("success_action_redirect", bad)]))
    assert r.status == 204 and "example" not in r.headers.get("location", "")


def test_large_file_is_streamed_in_blocks(node: GarageNode, s3: Any, bucket: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    fields = presigned(s3, bucket, key="big", conditions=[])
    r = post(node, bucket, form(fields, file=data))
    assert r.status == 204
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == data


def test_content_length_range(node: GarageNode, s3: Any, bucket: str) -> None:
    conds: list[Any] = [["content-length-range", 10, 2 * 1024 * 1024]]
    for data, code in ((b"short", "EntityTooSmall"),
                       (os.urandom(3 * 1024 * 1024), "EntityTooLarge")):
        fields = presigned(s3, bucket, key="sized", conditions=conds)
        r = post(node, bucket, form(fields, file=data))
        assert (r.status, r.code) == (400, code)
        assert not object_exists(s3, bucket, "sized")
    fields = presigned(s3, bucket, key="sized", conditions=conds)
    assert post(node, bucket, form(fields, file=b"just right")).status == 204


def test_policy_refusals(node: GarageNode, s3: Any, bucket: str,
                         creds: tuple[str, str]) -> None:
    cases: list[tuple[list[tuple[str, str | bytes]], int, str, str]] = []
    f = presigned(s3, bucket, conditions=[["starts-with", "$key", "up/"]])
    cases.append((f, 403, "AccessDenied", "Policy Condition failed"))  # key is not up/...
    f = presigned(s3, bucket, key="up/x", conditions=[["starts-with", "$key", "up/"]],
                  expires=-60)
    cases.append((f, 403, "AccessDenied", "Policy expired"))
    f = presigned(s3, bucket, key="up/x")
    cases.append((f + [("x-amz-meta-a", "b")], 403, "AccessDenied", "Extra input fields"))
    f = presigned(s3, bucket, key="up/x", conditions=[["starts-with", "$key", "up/"],
                                                        {"bucket": "another-bucket"}])
    cases.append((f, 403, "AccessDenied", "Policy Condition failed"))
    for fields, status, code, msg in cases:
        fields = [(n, "other" if n == "key" and v == "up/${filename}" else v)
                  for n, v in fields]
        r = post(node, bucket, form(fields))
        assert (r.status, r.code) == (status, code), (fields, r.body)
        assert msg in (r.text("Message") or "")
    # Tampered policy: the signature no longer matches.
    f = dict(presigned(s3, bucket, key="up/x"))
    doc = json.loads(base64.b64decode(f["policy"]))
    doc["conditions"] = [c for c in doc["conditions"] if not isinstance(c, list)]
    f["policy"] = base64.b64encode(json.dumps(doc).encode()).decode()
    r = post(node, bucket, form(list(f.items())))
    assert (r.status, r.code) == (403, "SignatureDoesNotMatch")
    # A bad signature field, an unknown key.
    f = dict(presigned(s3, bucket, key="up/x"))
    r = post(node, bucket, form(list({**f, "x-amz-signature": "00" * 32}.items())))
    assert (r.status, r.code) == (403, "SignatureDoesNotMatch")
    cred = f["x-amz-credential"].replace(creds[0], "GK" + "0" * 24)
    r = post(node, bucket, form(list({**f, "x-amz-credential": cred}.items())))
    assert r.status == 403
    # Policies that are not policies.
    for doc2, why in (({"conditions": []}, "missing expiration"),
                      ({"expiration": "2099-01-01T00:00:00Z"}, "missing conditions"),
                      ({"expiration": "soon", "conditions": []}, "expiration"),
                      ({"expiration": 5, "conditions": []}, "expiration"),
                      ({"expiration": "2099-01-01T00:00:00Z", "conditions": "all"},
                       "conditions"),
                      ({"expiration": "2099-01-01T00:00:00Z",
                        "conditions": [["in", "$key", "x"]]}, "Condition"),
                      ({"expiration": "2099-01-01T00:00:00Z",
                        "conditions": [["content-length-range", -1, "x"]]}, "Condition"),
                      ({"expiration": "2099-01-01T00:00:00Z",
                        "conditions": [{"a": "b", "c": "d"}]}, "Condition"),
                      ({"expiration": "2099-01-01T00:00:00Z",
                        "conditions": [["eq", "key", "x"]]}, "Condition")):
        r = post(node, bucket, form([("key", "other")] + sign_policy(creds, doc2)))
        assert (r.status, r.code) == (400, "InvalidPolicyDocument"), (doc2, r.body)
        assert why in (r.text("Message") or ""), (doc2, r.body)
    for bad in ("not base64!", base64.b64encode(b"not json").decode(),
                base64.b64encode(b"[1, 2]").decode(), base64.b64encode(b"\xff").decode()):
        f = dict(presigned(s3, bucket, key="up/x"))
        r = post(node, bucket, form(list({**f, "policy": bad}.items())))
        # The signature covers the policy as sent: checked first, as on AWS.
        assert r.status in (400, 403), r.body
    assert not object_exists(s3, bucket, "other") and not object_exists(s3, bucket, "up/x")


def test_hand_signed_policy_works(node: GarageNode, s3: Any, bucket: str,
                                  creds: tuple[str, str]) -> None:
    fields = sign_policy(creds, {"expiration": "2099-01-01T00:00:00.000Z",
                                 "conditions": [["starts-with", "$key", "hand/"],
                                                {"bucket": bucket}]})
    r = post(node, bucket, form([("key", "hand/1")] + fields, file=b"by hand"))
    assert r.status == 204, r.body
    assert s3.get_object(Bucket=bucket, Key="hand/1")["Body"].read() == b"by hand"


def test_missing_fields(node: GarageNode, s3: Any, bucket: str) -> None:
    f = presigned(s3, bucket, key="up/x")
    r = post(node, bucket, form([kv for kv in f if kv[0] != "key"]))
    assert (r.status, r.code) == (400, "InvalidArgument")
    r = post(node, bucket, form(f, file=None))
    assert (r.status, r.code) == (400, "InvalidArgument")
    assert "file" in (r.text("Message") or "")
    r = post(node, bucket, form([kv for kv in f if kv[0] != "policy"]))
    assert (r.status, r.code) == (400, "InvalidArgument")
    r = post(node, bucket, form([kv for kv in f if kv[0] != "x-amz-credential"]))
    assert (r.status, r.code) == (400, "InvalidArgument")
    r = post(node, bucket, form([("key", "up/x")]))  # anonymous form
    assert (r.status, r.code) == (403, "AccessDenied")
    r = post(node, bucket, b"key=up/x", content_type="application/x-www-form-urlencoded")
    assert (r.status, r.code) == (412, "PreconditionFailed")
    assert not object_exists(s3, bucket, "up/x")


def test_hostile_fields(node: GarageNode, s3: Any, bucket: str) -> None:
    conds: list[Any] = [["starts-with", "$x-amz-meta-a", ""]]
    f = presigned(s3, bucket, key="h", conditions=conds)
    for value in (b"\xff\xfe not utf-8", b"line\r\nX-Injected: 1", b"x" * 30000):
        r = post(node, bucket, form(f + [("x-amz-meta-a", value)]))
        assert (r.status, r.code) == (400, "InvalidArgument"), value[:20]
    # Duplicated field.
    r = post(node, bucket, form(f + [("x-amz-meta-a", "1"), ("X-Amz-Meta-A", "2")]))
    assert (r.status, r.code) == (400, "InvalidArgument")
    # A key with a CR/LF is a key like any other; its Location header is percent-encoded.
    fk = presigned(s3, bucket, key="line\r\nbreak", conditions=[])
    r = post(node, bucket, form(fk))
    assert r.status == 204 and "%0D%0A" in r.headers["location"]
    assert s3.get_object(Bucket=bucket, Key="line\r\nbreak")["Body"].read() == b"data"
    # Fields after the file are ignored, as on AWS (not an "extra input field").
    r = post(node, bucket, form(f + [("x-amz-meta-a", "ok")], after=[("x-amz-meta-b", "z")]))
    assert r.status == 204
    assert s3.head_object(Bucket=bucket, Key="h")["Metadata"] == {"a": "ok"}
    assert not object_exists(s3, bucket, "x")


def test_broken_multipart(node: GarageNode, s3: Any, bucket: str) -> None:
    f = presigned(s3, bucket, key="broken", conditions=[])
    good = form(f, file=os.urandom(100_000))
    for body, ctype in ((b"garbage", f"multipart/form-data; boundary={BOUNDARY}"),
                        (good, "multipart/form-data"),  # no boundary
                        (good, "multipart/form-data; boundary=other")):
        r = post(node, bucket, body, content_type=ctype)
        assert r.status == 400 and r.code in ("MalformedPOSTRequest", "InvalidArgument"), \
            (ctype, r.body)
    # Body cut in the middle of the file: no object, no 500.
    conn = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=30)
    conn.putrequest("POST", f"/{bucket}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    conn.putheader("Content-Length", str(len(good)))
    conn.endheaders()
    conn.send(good[: len(good) // 2])
    conn.sock.shutdown(1)  # type: ignore[union-attr]
    try:
        status = conn.getresponse().status
        assert status == 400
    except (ConnectionError, http.client.HTTPException):
        pass
    conn.close()
    # No end boundary: the file never ends properly.
    r = post(node, bucket, good[: -len(f"--{BOUNDARY}--\r\n") - 2])
    assert r.status == 400
    assert not object_exists(s3, bucket, "broken")
    log = node.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "-> 500" not in log


def test_no_write_permission(node: GarageNode, other_s3: Any, s3: Any, bucket: str) -> None:
    f = presigned(other_s3, bucket, key="nope", conditions=[])
    r = post(node, bucket, form(f))
    assert r.status in (403, 404)
    assert not object_exists(s3, bucket, "nope")


def test_sse_c_form_fields(node: GarageNode, s3: Any, bucket: str) -> None:
    key = os.urandom(32)
    sse = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
           "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
           "x-amz-server-side-encryption-customer-key-md5":
           base64.b64encode(hashlib.md5(key).digest()).decode()}
    f = presigned(s3, bucket, key="enc", conditions=[{k: v} for k, v in sse.items()])
    r = post(node, bucket, form(f + list(sse.items()), file=b"encrypted by form"))
    assert r.status == 204, r.body
    assert r.headers["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    got = s3.get_object(Bucket=bucket, Key="enc", SSECustomerAlgorithm="AES256",
                        SSECustomerKey=key)
    assert got["Body"].read() == b"encrypted by form"
    with pytest.raises(Exception, match="InvalidRequest"):
        s3.get_object(Bucket=bucket, Key="enc")
